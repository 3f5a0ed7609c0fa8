import { type Command, Option } from 'commander'
import type { RolloutView } from '../manager/index.js'
import { apiClient } from './client.js'
import {
  type ClientOptions,
  clientOptions,
  durationUpTo,
  examples,
  flagValue,
  type NodeCount,
  nodeCount,
  percent,
  print,
  secondsUpTo,
  stepList,
  timeoutSeconds,
  type WaitOptions,
  waitOptions,
  wholeUpTo,
  withParentOptions,
} from './command-options.js'
import { UsageError } from './errors.js'
import { configureHistory } from './release-commands.js'

const CONTROLS = [
  ['approve', 'let a canary rollout waiting for approval continue'],
  ['pause', 'let no further node start switching (those switching finish)'],
  ['resume', 'continue a paused rollout'],
  ['abort', 'stop a rollout and send every node it switched back'],
] as const

/** `shoal rollout WORD ...` forms; anything else is a NAME@VERSION to roll out. */
const SUBCOMMANDS = ['status', 'list', 'history', 'undo', ...CONTROLS.map(([op]) => op)]

/**
 * The numeric rollout flags, checked here (exit code 2, nothing sent) in the
 * limits the agent's rollout request holds them to (src/manager/manager.ts).
 */
const maxUnavailableFlag = flagValue(nodeCount, '--max-unavailable is N (≥ 1) or P% (1–100%)')
const canaryFlag = flagValue(percent, '--canary is a percent of the nodes, 1–100')
const minReadyFlag = flagValue(secondsUpTo(3600), '--min-ready is seconds, 0–3600 (fractions allowed)')
const progressDeadlineFlag = flagValue((value) => {
  const ms = secondsUpTo(86_400)(value)
  return ms == null || ms < 1000 ? null : ms
}, '--progress-deadline is seconds, 1–86400')
const stepsFlag = flagValue(stepList, '--steps is a rising list of percents, e.g. 10,50,100')
const intervalFlag = flagValue(durationUpTo(3600), '--interval is a duration from 1s to 1h, e.g. 30s or 2m')
const minRequestsFlag = flagValue(wholeUpTo(1_000_000_000), '--min-requests is a whole number (≥ 1)')
/** Repeatable `--analysis CONDITION` (checked before anything is sent: rollout.ts). */
function analysisFlag(value: string, previous: string[] = []): string[] {
  return [...previous, value.trim()]
}
const failureThresholdFlag = flagValue(
  wholeUpTo(Number.MAX_SAFE_INTEGER),
  '--failure-threshold is a whole number of nodes (≥ 1)',
)

const strategyOption = () =>
  new Option(
    '--strategy <strategy>',
    'how nodes move (every node switches make-before-break, so all-at-once keeps serving)',
  )
    .choices(['all-at-once', 'rolling', 'canary'])
    .default('all-at-once')

type RolloutStartOptions = ClientOptions &
  WaitOptions & {
    strategy: string
    maxUnavailable?: NodeCount
    canary?: number
    approve?: string
    nodes?: string
    /** Milliseconds (the flag is seconds). */
    minReady?: number
    /** Milliseconds (the flag is seconds). */
    progressDeadline?: number
    failureThreshold?: number
    autoRollback?: boolean
    steps?: number[]
    analysis?: string[]
    /** Milliseconds (the flag is a duration). */
    interval?: number
    minRequests?: number
    onMissing?: string
  }

/**
 * Rollouts. Serf and kubectl users both guess right: the flat verbs (`rollouts`,
 * `rollback`, `pause ID`...) and `rollout status|list|history|undo|pause|resume|approve|abort`
 * run the same code. `rollout NAME@VERSION` stays the way to start one: commander
 * dispatches to a subcommand only when the first word is one of its names.
 */
export function addRolloutCommands(program: Command): void {
  const rollout = clientOptions(
    waitOptions(
      program
        .command('rollout')
        .argument('<name@version>', 'the version to run')
        .usage(`[options] <name@version>\n       shoal rollout ${SUBCOMMANDS.join('|')} [options] ...`)
        .summary(`move the cluster to a version; also rollout ${SUBCOMMANDS.join('|')}`)
        .description('move the cluster (or --nodes) to a distribution version (docs/manager.md)')
        .addOption(strategyOption())
        .option(
          '--max-unavailable <n>',
          'rolling: nodes out of rotation at once, N or P% (default 1)',
          maxUnavailableFlag,
        )
        .option('--canary <percent>', 'canary: share of nodes updated first, 1-100 (default 20)', canaryFlag)
        .addOption(
          new Option('--approve <mode>', 'canary: continue after approval, or after a clean window').choices([
            'manual',
            'auto',
          ]),
        )
        .option('--nodes <ids>', 'only these nodes (comma-separated ids)')
        .option(
          '--min-ready <seconds>',
          'a node must stay ready this long before the next one goes, 0-3600 (default 1)',
          minReadyFlag,
        )
        .option(
          '--failure-threshold <n>',
          'failed nodes that stop the rollout (default 1)',
          failureThresholdFlag,
        )
        .option(
          '--progress-deadline <seconds>',
          "a node's switch not done this long after its turn came fails (default 600)",
          progressDeadlineFlag,
        )
        .option('--no-auto-rollback', 'when the threshold is crossed, stop but do not send failed nodes back')
        .option('--steps <percents>', 'canary: shares of nodes step by step, e.g. 10,50,100', stepsFlag)
        .option(
          '--analysis <condition>',
          "judge each step by the load balancers' figures, e.g. 'error-rate<1%' or 'p99<+50ms' (repeatable)",
          analysisFlag,
        )
        .option(
          '--interval <duration>',
          'with --analysis: window of traffic per step (default 30s)',
          intervalFlag,
        )
        .option(
          '--min-requests <n>',
          'with --analysis: fewer requests make a verdict inconclusive (default 100)',
          minRequestsFlag,
        )
        .addOption(
          new Option(
            '--on-missing <what>',
            'with --analysis: an inconclusive verdict fails (default) or pauses',
          ).choices(['fail', 'pause']),
        )
        // `shoal rollout --watch status ID` worked when status was an argument.
        .addOption(new Option('--watch').hideHelp())
        .addHelpText(
          'after',
          `\nWithout --wait it prints the rollout as started; with --wait, a progress bar on a terminal.\n${examples(
            'shoal rollout educa@1.1 --wait',
            'shoal rollout educa@1.1 --strategy rolling --max-unavailable 25% --wait --timeout 900',
            'shoal rollout educa@1.1 --strategy canary --canary 20 --approve manual',
            "shoal rollout educa@1.1 --strategy canary --steps 10,50,100 --analysis 'error-rate<1%' --analysis 'p99<+50ms' --interval 30s --wait",
            'shoal rollout status r3 --watch',
            'shoal rollout approve r3',
            'shoal rollout undo educa',
          )}`,
        ),
      'block until it is done; exit code 1 if it fails, is rolled back, aborted or superseded',
    ),
  ).action(async (distribution: string, opts: RolloutStartOptions) => {
    if (!distribution.includes('@'))
      throw new UsageError(
        `"${distribution}" is neither NAME@VERSION nor a rollout command (${SUBCOMMANDS.join(', ')})`,
      )
    const { rollout: start, formatRollout, checkConditions } = await import('./rollout.js')
    if (opts.analysis != null) await checkConditions(opts.analysis)
    const body = {
      distribution,
      strategy: opts.strategy,
      ...opts.maxUnavailable,
      ...(opts.canary == null ? {} : { canaryPercent: opts.canary }),
      ...(opts.approve == null ? {} : { approve: opts.approve }),
      ...(opts.nodes == null ? {} : { nodes: String(opts.nodes).split(',').filter(Boolean) }),
      ...(opts.minReady == null ? {} : { minReadyMs: opts.minReady }),
      ...(opts.failureThreshold == null ? {} : { failureThreshold: opts.failureThreshold }),
      ...(opts.progressDeadline == null ? {} : { progressDeadlineMs: opts.progressDeadline }),
      autoRollback: opts.autoRollback !== false,
      ...(opts.steps == null ? {} : { steps: opts.steps }),
      ...(opts.analysis == null ? {} : { analysis: opts.analysis }),
      ...(opts.interval == null ? {} : { intervalMs: opts.interval }),
      ...(opts.minRequests == null ? {} : { minRequests: opts.minRequests }),
      ...(opts.onMissing == null ? {} : { onMissing: opts.onMissing }),
    }
    const wait = opts.wait ? { timeoutMs: opts.timeout * 1000, progress: !opts.json, json: opts.json } : null
    const view = await start(apiClient(opts), body, wait)
    print(opts.json, view, () => formatRollout(view))
  })

  clientOptions(
    rollout
      .command('status')
      .argument('<id>', 'rollout id (shoal rollout list)')
      .description('one rollout and where each of its nodes is; --watch follows it to its end')
      .option('-w, --watch', 'follow until it ends: exit code 0 when done, 1 when it fails')
      .option(
        '--timeout <seconds>',
        'with --watch: give up after this long, exit code 6',
        timeoutSeconds,
        600,
      )
      .addHelpText('after', examples('shoal rollout status r3', 'shoal rollout status r3 --watch')),
  ).action(
    async (id: string, own: ClientOptions & { watch?: boolean; timeout: number }, command: Command) => {
      const opts = withParentOptions(command, own)
      const { follow, formatRollout } = await import('./rollout.js')
      const client = apiClient(opts)
      const view = opts.watch
        ? await follow(client, id, { timeoutMs: opts.timeout * 1000, progress: !opts.json, json: opts.json })
        : await client.get<RolloutView>(`/api/rollouts/${encodeURIComponent(id)}`)
      print(opts.json, view, () => formatRollout(view))
    },
  )

  configureList(rollout.command('list'), 'rollouts')
  configureHistory(rollout.command('history'))
  configureRollback(rollout.command('undo'), 'rollback')
  for (const [op, what] of CONTROLS) configureControl(rollout.command(op), op, what, op)

  configureList(program.command('rollouts'), 'rollout list')
  configureRollback(program.command('rollback'), 'rollout undo')
  for (const [op, what] of CONTROLS) configureControl(program.command(op), op, what, `rollout ${op}`)
}

/** `shoal rollouts`, `shoal rollout list`. */
function configureList(command: Command, alias: string): Command {
  return clientOptions(
    command
      .description(`rollouts and rollbacks, newest first, with their progress (also: shoal ${alias})`)
      .addHelpText(
        'after',
        examples(`shoal ${command.parent?.name() === 'rollout' ? 'rollout list' : 'rollouts'}`),
      ),
  ).action(async (own: ClientOptions, cmd: Command) => {
    const opts = withParentOptions(cmd, own)
    const { formatRollouts } = await import('./rollout.js')
    const list = await apiClient(opts).get<RolloutView[]>('/api/rollouts')
    print(opts.json, list, () => formatRollouts(list))
  })
}

/** `shoal rollback NAME`, `shoal rollout undo NAME`. */
function configureRollback(command: Command, alias: string): Command {
  const self = command.parent?.name() === 'rollout' ? 'rollout undo' : 'rollback'
  return clientOptions(
    waitOptions(
      command
        .argument('<name>', 'distribution name (NAME@VERSION: back to that version, like --to)')
        .description(
          `roll back to an earlier version the nodes still hold, by default the previous one (also: shoal ${alias})`,
        )
        .option('--to <version>', 'the version to go back to')
        .addOption(strategyOption())
        .option(
          '--max-unavailable <n>',
          'rolling: nodes out of rotation at once, N or P%',
          maxUnavailableFlag,
        )
        .addHelpText(
          'after',
          examples(`shoal ${self} educa --wait`, `shoal ${self} educa --to 1.0 --strategy rolling`),
        ),
      'block until it is done; exit code 1 if it fails',
    ),
  ).action(
    async (
      target: string,
      own: ClientOptions & WaitOptions & { to?: string; strategy: string; maxUnavailable?: NodeCount },
      cmd: Command,
    ) => {
      const opts = withParentOptions(cmd, own)
      const { rollback, formatRollout } = await import('./rollout.js')
      // `undo educa@1.0` reads as `undo educa --to 1.0`.
      const at = target.indexOf('@')
      const name = at > 0 && opts.to == null ? target.slice(0, at) : target
      const to = at > 0 && opts.to == null ? target.slice(at + 1) : opts.to
      const body = {
        name,
        ...(to == null ? {} : { to }),
        strategy: opts.strategy,
        ...opts.maxUnavailable,
      }
      const wait = opts.wait ? { timeoutMs: opts.timeout * 1000, progress: !opts.json } : null
      const view = await rollback(apiClient(opts), body, wait)
      print(opts.json, view, () => formatRollout(view))
    },
  )
}

/** `shoal pause ID`, `shoal rollout pause ID`, and approve, resume, abort. */
function configureControl(command: Command, op: string, what: string, alias: string): Command {
  const self = command.parent?.name() === 'rollout' ? `rollout ${op}` : op
  return clientOptions(
    command
      .argument('<id>', 'rollout id (shoal rollout list)')
      .description(`${what} (also: shoal ${alias})`)
      .addHelpText('after', examples(`shoal ${self} r3`)),
  ).action(async (id: string, own: ClientOptions, cmd: Command) => {
    const opts = withParentOptions(cmd, own)
    const { formatRollout } = await import('./rollout.js')
    const view = await apiClient(opts).post<RolloutView>(`/api/rollouts/${encodeURIComponent(id)}/${op}`)
    print(opts.json, view, () => formatRollout(view))
  })
}
