import { rm } from 'node:fs/promises'
import { join } from 'node:path'
import { writeFileAtomic } from '../shared/index.js'
import { RUN_FILE } from './constants.js'

/** What `<data>/agent.json` says while an agent runs, for tools that look for it (the local provider, the demo). */
export interface RunInfo {
  pid: number
  id: string
  cluster: string
  api: string
  addrs: string[]
  startedAt: string
}

export async function writeRunFile(dataDir: string, info: RunInfo): Promise<void> {
  await writeFileAtomic(join(dataDir, RUN_FILE), `${JSON.stringify(info, null, 2)}\n`)
}

/** Removes the run file; none is fine. */
export async function removeRunFile(dataDir: string): Promise<void> {
  await rm(join(dataDir, RUN_FILE), { force: true })
}
