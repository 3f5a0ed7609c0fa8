import { readFileSync } from 'node:fs'
import { readdir, readFile } from 'node:fs/promises'
import { setTimeout as sleep } from 'node:timers/promises'
import { signalGroup } from './supervisor.js'

/** Environment variable that marks every component process with its agent's data folder. */
export const RUNTIME_MARK = 'SHOAL_RUNTIME_DATA'

/**
 * Component processes an earlier run of this agent left behind (it was killed
 * with -9, or crashed), found by the mark in their environment, which survives
 * the agent and cannot be missed the way a pid written after spawn can. Linux
 * (/proc); elsewhere only the recorded pids are checked.
 */
export async function findOrphans(dataDir: string, recordedPids: number[]): Promise<number[]> {
  const mark = `${RUNTIME_MARK}=${dataDir}`
  const found = new Set<number>()
  const entries = await readdir('/proc').catch(() => [] as string[])
  for (const entry of entries) {
    const pid = Number(entry)
    if (!Number.isInteger(pid) || pid === process.pid) continue
    const environ = await readFile(`/proc/${pid}/environ`, 'latin1').catch(() => '')
    if (environ.split('\0').includes(mark)) found.add(pid)
  }
  if (entries.length === 0) for (const pid of recordedPids) if (isAlive(pid)) found.add(pid)
  return [...found]
}

/** Ends the given processes (and their groups): SIGTERM, then SIGKILL after `graceMs`. */
export async function reap(pids: number[], graceMs: number): Promise<void> {
  if (pids.length === 0) return
  for (const pid of pids) signalGroup(pid, 'SIGTERM')
  const deadline = Date.now() + graceMs
  while (Date.now() < deadline && pids.some(isAlive)) await sleep(50)
  for (const pid of pids.filter(isAlive)) signalGroup(pid, 'SIGKILL')
  while (pids.some(isAlive)) await sleep(20)
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return !isZombie(pid)
  } catch {
    return false
  }
}

function isZombie(pid: number): boolean {
  try {
    // Field 3 of /proc/PID/stat is the state; Z is a zombie nobody has reaped yet.
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1')
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) === 'Z'
  } catch {
    return false
  }
}
