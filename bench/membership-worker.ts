/** Worker-thread entry of the membership benchmark: one AgentCell on this thread's event loop. */
import { parentPort } from 'node:worker_threads'
import { AgentCell, type CellMessage, type CellRequest } from './membership-cell.js'

const port = parentPort
if (port == null) throw new Error('membership-worker.js runs as a worker thread')

const post = (message: CellMessage) => port.postMessage(message)
const cell = new AgentCell((accusation) => post({ kind: 'accusation', accusation }))

port.on('message', async ({ id, method, args }: CellRequest) => {
  try {
    const result: unknown = await Reflect.apply(cell[method], cell, args)
    post({ kind: 'reply', id, result })
  } catch (err) {
    post({ kind: 'reply', id, error: err instanceof Error ? (err.stack ?? err.message) : String(err) })
  }
})
