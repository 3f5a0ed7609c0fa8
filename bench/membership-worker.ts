/** Worker-thread entry of the membership benchmark: one AgentCell on this thread's event loop. */
import { parentPort, workerData } from 'node:worker_threads'
import type { TimerPreset } from '../src/shared/presets.js'
import { AgentCell, type CellKind, type CellMessage, type CellRequest } from './membership-cell.js'

const port = parentPort
if (port == null) throw new Error('membership-worker.js runs as a worker thread')

const post = (message: CellMessage) => port.postMessage(message)
const data = (workerData ?? {}) as { kind?: CellKind; preset?: TimerPreset }
const cell = new AgentCell(
  (accusation) => post({ kind: 'accusation', accusation }),
  data.kind ?? 'agent',
  data.preset ?? 'lan',
)

port.on('message', async ({ id, method, args }: CellRequest) => {
  try {
    const result: unknown = await Reflect.apply(cell[method], cell, args)
    post({ kind: 'reply', id, result })
  } catch (err) {
    post({ kind: 'reply', id, error: err instanceof Error ? (err.stack ?? err.message) : String(err) })
  }
})
