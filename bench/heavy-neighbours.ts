/**
 * Other CPU-heavy runs on this shared machine (benchmarks, simulations, test
 * suites, CI): a measurement waits until none runs, as far as a cap allows.
 */
import { readdir, readFile } from 'node:fs/promises'
import { setTimeout as sleep } from 'node:timers/promises'

/** Command-line fragments of the runs that would disturb a measurement. */
export const HEAVY_RUNS = ['bench/run.js', 'sim-process', 'vitest', '.ci/run'] as const

export interface NeighbourWait {
  before: string
  waitedS: number
  /** False: the cap ran out with one of them still running (the measurement went ahead). */
  clear: boolean
  /** What was running when the wait began (pid and command line, shortened). */
  seen: string[]
}

/** Processes other than this one, its ancestors and its descendants whose command line names one of `HEAVY_RUNS`. */
export async function heavyNeighbours(): Promise<string[]> {
  const procs: Array<{ pid: number; ppid: number; cmd: string }> = []
  for (const entry of await readdir('/proc')) {
    const pid = Number(entry)
    if (!Number.isInteger(pid)) continue
    const [cmd, stat] = await Promise.all([
      readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => ''),
      readFile(`/proc/${pid}/stat`, 'utf8').catch(() => ''),
    ])
    if (stat === '') continue
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1])
    procs.push({ pid, ppid, cmd: cmd.replaceAll('\0', ' ').trim() })
  }
  const own = new Set([process.pid])
  for (let grew = true; grew; ) {
    grew = false
    for (const p of procs)
      if (!own.has(p.pid) && own.has(p.ppid)) {
        own.add(p.pid)
        grew = true
      }
  }
  // Its ancestors too: the `sh -c node dist/bench/run.js …` npm started this run from.
  const byPid = new Map(procs.map((p) => [p.pid, p]))
  for (let up = byPid.get(process.ppid); up != null && !own.has(up.pid); up = byPid.get(up.ppid))
    own.add(up.pid)
  return (
    procs
      // A `flock LOCK <run>` still waiting for the lock runs nothing yet (its child appears once it holds it).
      .filter(
        (p) =>
          !own.has(p.pid) && !p.cmd.startsWith('flock ') && HEAVY_RUNS.some((run) => p.cmd.includes(run)),
      )
      .map((p) => `${p.pid} ${p.cmd.slice(0, 120)}`)
  )
}

/** Polls every `everyS` until no heavy neighbour runs, or `capS` has passed. */
export async function waitForNeighbours(before: string, { everyS = 30, capS = 1200 } = {}) {
  const began = performance.now()
  const seen = await heavyNeighbours()
  let running = seen
  while (running.length > 0 && performance.now() - began < capS * 1000) {
    console.error(`membership processes: before ${before}, waiting for ${running.length} other run(s) to end`)
    await sleep(everyS * 1000)
    running = await heavyNeighbours()
  }
  const wait: NeighbourWait = {
    before,
    waitedS: Math.round((performance.now() - began) / 1000),
    clear: running.length === 0,
    seen,
  }
  return wait
}
