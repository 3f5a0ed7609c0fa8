/**
 * Child-process entry of the simulation: one size per process, so the virtual
 * clock owns every timer in it and the heap measured is the simulation's alone.
 * Argument: the scenario options as JSON; the result goes back over IPC (or to
 * stdout when run by hand: `node --expose-gc dist/bench/scale/sim-process.js '{"n":100}'`).
 */
import { runHybrid } from './hybrid.js'
import { runScenario, type ScenarioOptions } from './scenario.js'
import { runStarved, type StarvedOptions } from './starved.js'

const options = JSON.parse(process.argv[2] ?? '{}') as ScenarioOptions & {
  hybrid?: { full: number }
  starved?: StarvedOptions
}
const log = (line: string) => process.stderr.write(`sim: ${line}\n`)
const result =
  options.starved != null
    ? await runStarved({ ...options.starved, log })
    : options.hybrid == null
      ? await runScenario({ ...options, log })
      : await runHybrid({ ...options, full: options.hybrid.full, log })
if (process.send != null) {
  await new Promise<void>((resolve, reject) =>
    process.send!({ kind: 'result', result }, (err: Error | null) => (err == null ? resolve() : reject(err))),
  )
} else {
  process.stdout.write(`${JSON.stringify(result, null, 2)}\n`)
}
process.exit(0)
