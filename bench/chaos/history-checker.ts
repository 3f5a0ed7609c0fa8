/**
 * A checker over a history of manager commands sent by clients during faults
 * (invoke, then ok / fail / unknown) and the committed state every agent holds
 * once the faults healed (`GET /api/rollouts`). Pure functions, no I/O:
 * test/unit/history-checker.test.ts feeds them hand-made histories.
 *
 * Each command carries a client-chosen marker that its effect records: the name
 * of the API token it was sent with, which the agent writes as the rollout's
 * `requestedBy` or as the `by` of the control action in the rollout's audit
 * trail (`actions`). So the state says, for every marker, where its command
 * took effect, and when (`requestedAt`, the action's `at`).
 *
 * What must hold (docs/reliability-chaos.md, "Manager campaigns"):
 * - an acknowledged command is present exactly once, where its answer said;
 * - a definitely refused command is absent;
 * - a command of unknown outcome is present at most once;
 * - no effect without a command (a marker nobody sent);
 * - rollout ids follow real time: when A was acknowledged before B was invoked,
 *   A's id is smaller; control actions on one rollout likewise keep their order;
 * - an effect is stamped between its command's invoke and its answer;
 * - every agent holds the same committed state;
 * - an effect an earlier check found absent stays absent (nothing applies late).
 */

/** What a client asked. */
export type Command =
  | { op: 'rollout'; distribution: string; strategy?: string; approve?: 'manual' | 'auto' }
  | { op: 'approve' | 'pause' | 'resume' | 'abort'; id: string }

export type Outcome = 'ok' | 'fail' | 'unknown'

/** One command: its invocation and how it ended. */
export interface Operation {
  /** Unique per command: the token name the effect carries as `requestedBy` / `by`. */
  marker: string
  /** The client that sent it (one command at a time per client). */
  client: string
  /** The agent whose API it was sent to. */
  agent: string
  command: Command
  /** ms since the epoch (Date.now()), just before the request left. */
  invokedAt: number
  /** When the answer (or the error) came back. */
  completedAt: number
  outcome: Outcome
  /** ok: the rollout id the answer named. */
  rollout?: string
  /** HTTP status, when an answer came. */
  status?: number
  /** The answer's error code (ERR_…) or the network error's (ECONNREFUSED, ECONNRESET, TIMEOUT…). */
  code?: string
  detail?: string
}

/** The fields of a `GET /api/rollouts` entry the checker reads. */
export interface ObservedRollout {
  id: string
  kind?: string
  distribution: string
  from?: string | null
  state: string
  requestedBy: string
  requestedAt: string
  finishedAt?: string | null
  reason?: string | null
  approved?: boolean
  actions?: Array<{ op: string; by: string; at: string }>
}

export type ViolationKind =
  /** An acknowledged command whose effect is not in the state. */
  | 'lost'
  /** A command whose effect is in the state more than once. */
  | 'duplicated'
  /** An acknowledged command whose effect is elsewhere than its answer said, or is not what was asked. */
  | 'wrong-effect'
  /** A definitely refused command whose effect is in the state. */
  | 'failed-applied'
  /** An effect whose marker no command carried. */
  | 'foreign'
  /** Rollout ids (or the actions on one rollout) out of real-time order. */
  | 'order'
  /** An effect stamped before its command was sent, or after it was answered. */
  | 'time'
  /** Agents hold different committed states. */
  | 'disagree'
  /** An effect an earlier check had found absent. */
  | 'late'

export interface Violation {
  kind: ViolationKind
  /** The markers involved. */
  markers: string[]
  detail: string
}

export interface CheckOptions {
  /** Markers of effects made outside the history (the campaign's set-up): neither foreign nor checked. */
  ignore?: readonly string[]
  /** Rollouts the cluster state keeps (HISTORY_LENGTH): when it holds this many, older ones may be gone. */
  historyLength?: number
  /** Actions a rollout keeps (MAX_ACTIONS): when it holds this many, older ones may be gone. */
  maxActions?: number
  /** Markers an earlier check of the same cluster found without effect. */
  previouslyAbsent?: readonly string[]
  /** Clock slack for the effect-time check (ms): the agents and the clients share a clock; default 50. */
  slackMs?: number
}

export interface CheckStats {
  ops: number
  ok: number
  fail: number
  unknown: number
  /** Commands of unknown outcome found applied (once) and found absent. */
  unknownApplied: number
  unknownAbsent: number
  /** Acknowledged commands whose rollout (or action) the state no longer keeps: nothing to check. */
  evicted: number
  /** Per outcome code (`ok`, or the refusal's / error's code): how many, and how many took effect. */
  byCode: Record<string, { count: number; applied: number }>
  /** Per command op and outcome. */
  byOp: Record<string, Record<Outcome, number>>
  rollouts: number
  actions: number
  agents: number
}

export interface CheckResult {
  ok: boolean
  violations: Violation[]
  stats: CheckStats
  /** Markers without effect in the state checked (pass them as `previouslyAbsent` next time). */
  absent: string[]
}

/** The marker of a `requestedBy` / `by`: the agent writes `NAME (ROLE)` for a token holder. */
export function markerOf(requestedBy: string): string {
  return requestedBy.replace(/ \((viewer|developer|operator|admin)\)$/, '')
}

/** `r12` → 12 (NaN for anything else). */
export function rolloutNumber(id: string): number {
  return /^r\d+$/.test(id) ? Number(id.slice(1)) : Number.NaN
}

/**
 * How an answer classifies: `ok` (2xx), `fail` (a definite refusal: the command
 * was not applied and never will be), or `unknown`.
 *
 * Definite: a 4xx with an error code. The agent refuses those before the
 * command reaches the log (bad request, a token without the role, an unknown
 * version), or the leader decides them from its applied state after it looked
 * the request id up among those already applied (ERR_ROLLOUT_FINISHED,
 * ERR_NOT_PAUSED, ERR_NOT_WAITING, ERR_NOT_FOUND), so no earlier attempt of the
 * same request can still commit. And ECONNREFUSED: no connection, no request.
 *
 * Unknown: every 5xx, ERR_NO_QUORUM included. The agent's submit() gives up
 * with ERR_NO_QUORUM once it has seen no leader for MANAGER_WAIT_MS, even when
 * an earlier attempt of the same request reached a leader that proposed it and
 * then died or paused; a later leader may commit that entry. ERR_NO_MANAGER
 * covers "not committed in time; outcome unknown". ERR_TIMEOUT,
 * ERR_STREAM_CLOSED and ERR_INTERNAL say nothing of what the leader did. So
 * neither do the 400s of a wire frame the asking agent could not read
 * (ERR_BAD_FRAME, ERR_FRAME_TOO_LARGE): the leader's answer, whatever it said.
 * A timeout, a reset or a hang-up without an answer: unknown.
 */
export function classify(answer: { status?: number; code?: string }): Outcome {
  const { status, code } = answer
  if (status != null && status >= 200 && status < 300) return 'ok'
  if (status == null) return code === 'ECONNREFUSED' ? 'fail' : 'unknown'
  if (code == null || !/^ERR_[A-Z0-9_]+$/.test(code) || WIRE_CODES.has(code)) return 'unknown'
  return status >= 400 && status < 500 ? 'fail' : 'unknown'
}

/** A frame between two agents that could not be read: says nothing of the command. */
const WIRE_CODES = new Set(['ERR_BAD_FRAME', 'ERR_FRAME_TOO_LARGE', 'ERR_MEMBERSHIP_MESSAGE'])

interface RolloutEffect {
  kind: 'rollout'
  rollout: string
  record: ObservedRollout
  at: number
}
interface ActionEffect {
  kind: 'action'
  rollout: string
  op: string
  position: number
  at: number
}
type Effect = RolloutEffect | ActionEffect

/** The fields agents must agree on (what a node observes of the members is left out). */
function projection(rollouts: readonly ObservedRollout[]): string[] {
  return rollouts.map((r) =>
    JSON.stringify([
      r.id,
      r.kind ?? null,
      r.distribution,
      r.from ?? null,
      r.state,
      r.requestedBy,
      r.requestedAt,
      r.finishedAt ?? null,
      r.reason ?? null,
      r.approved ?? null,
      r.actions ?? [],
    ]),
  )
}

/** Checks `history` against the rollouts each agent holds (agent name → `GET /api/rollouts`). */
export function checkHistory(
  history: readonly Operation[],
  states: Readonly<Record<string, readonly ObservedRollout[]>>,
  options: CheckOptions = {},
): CheckResult {
  const violations: Violation[] = []
  const add = (kind: ViolationKind, markers: string[], detail: string) =>
    violations.push({ kind, markers, detail })
  const slack = options.slackMs ?? 50
  const ignore = new Set(options.ignore ?? [])
  const agents = Object.keys(states).sort()

  // 1. Every agent holds the same committed state.
  const views = agents.map((a) => ({ agent: a, rows: projection(states[a] ?? []) }))
  const reference = views[0]
  for (const view of views.slice(1)) {
    if (reference == null || JSON.stringify(view.rows) === JSON.stringify(reference.rows)) continue
    const length = Math.max(view.rows.length, reference.rows.length)
    let at = 0
    while (at < length && view.rows[at] === reference.rows[at]) at++
    add(
      'disagree',
      [],
      `${view.agent} and ${reference.agent} differ at rollout #${at}: ` +
        `${view.rows[at] ?? 'nothing'} vs ${reference.rows[at] ?? 'nothing'}`,
    )
  }

  // 2. The effects in the state (the reference agent's; the others agree or were reported).
  const rollouts = reference == null ? [] : [...(states[reference.agent] ?? [])]
  const effects = new Map<string, Effect[]>()
  const note = (marker: string, effect: Effect) =>
    effects.set(marker, [...(effects.get(marker) ?? []), effect])
  let actionCount = 0
  for (const record of rollouts) {
    note(markerOf(record.requestedBy), {
      kind: 'rollout',
      rollout: record.id,
      record,
      at: Date.parse(record.requestedAt),
    })
    for (const [position, action] of (record.actions ?? []).entries()) {
      actionCount++
      note(markerOf(action.by), {
        kind: 'action',
        rollout: record.id,
        op: action.op,
        position,
        at: Date.parse(action.at),
      })
    }
  }
  const numbers = rollouts.map((r) => rolloutNumber(r.id)).filter((n) => Number.isFinite(n))
  const oldestKept = numbers.length === 0 ? Number.POSITIVE_INFINITY : Math.min(...numbers)
  const truncated = options.historyLength != null && rollouts.length >= options.historyLength
  const byId = new Map(rollouts.map((r) => [r.id, r]))
  /** The state may have dropped rollout `id` (older than every one it keeps, the list full). */
  const rolloutGone = (id: string) => truncated && rolloutNumber(id) < oldestKept && !byId.has(id)
  /** The state may have dropped actions of rollout `id` (it keeps the newest maxActions). */
  const actionsCut = (id: string) =>
    options.maxActions != null && (byId.get(id)?.actions?.length ?? 0) >= options.maxActions

  const stats: CheckStats = {
    ops: history.length,
    ok: 0,
    fail: 0,
    unknown: 0,
    unknownApplied: 0,
    unknownAbsent: 0,
    evicted: 0,
    byCode: {},
    byOp: {},
    rollouts: rollouts.length,
    actions: actionCount,
    agents: agents.length,
  }
  const absent: string[] = []
  const previouslyAbsent = new Set(options.previouslyAbsent ?? [])
  const markers = new Map<string, Operation>()
  for (const op of history) {
    if (markers.has(op.marker)) add('foreign', [op.marker], `two commands carry the marker ${op.marker}`)
    markers.set(op.marker, op)
  }

  // 3. Each command against its effects.
  for (const op of history) {
    stats[op.outcome]++
    const perOp = entry(stats.byOp, op.command.op, () => ({ ok: 0, fail: 0, unknown: 0 }))
    perOp[op.outcome]++
    const found = effects.get(op.marker) ?? []
    const code = op.outcome === 'ok' ? 'ok' : (op.code ?? `HTTP ${op.status ?? '?'}`)
    const perCode = entry(stats.byCode, code, () => ({ count: 0, applied: 0 }))
    perCode.count++
    if (found.length > 0) perCode.applied++
    else absent.push(op.marker)
    const what = `${op.marker} (${describe(op.command)} via ${op.agent}, ${op.outcome}${op.code == null ? '' : ` ${op.code}`})`
    const kindOk = found.every((e) =>
      op.command.op === 'rollout' ? e.kind === 'rollout' : e.kind === 'action',
    )
    if (!kindOk) add('wrong-effect', [op.marker], `${what}: its marker is on an effect of another kind`)
    if (found.length > 0 && previouslyAbsent.has(op.marker))
      add('late', [op.marker], `${what}: absent at an earlier check, present now (${where(found)})`)
    if (found.length > 1)
      add('duplicated', [op.marker], `${what}: present ${found.length} times: ${where(found)}`)

    if (op.outcome === 'fail') {
      if (found.length > 0)
        add('failed-applied', [op.marker], `${what}: refused, yet present: ${where(found)}`)
      continue
    }
    if (op.outcome === 'unknown') {
      if (found.length > 0) stats.unknownApplied++
      else stats.unknownAbsent++
    }
    if (op.outcome === 'ok' && found.length === 0) {
      const target = op.command.op === 'rollout' ? op.rollout : op.command.id
      const gone =
        target != null && (rolloutGone(target) || (op.command.op !== 'rollout' && actionsCut(target)))
      if (gone) stats.evicted++
      else add('lost', [op.marker], `${what}: acknowledged (${op.rollout ?? '?'}), absent from the state`)
      continue
    }
    const effect = found[0]
    if (effect == null) continue
    // Stamped by the leader between the request leaving and its answer coming back.
    if (Number.isFinite(effect.at)) {
      if (effect.at < op.invokedAt - slack)
        add(
          'time',
          [op.marker],
          `${what}: stamped ${iso(effect.at)}, before it was sent at ${iso(op.invokedAt)}`,
        )
      if (op.outcome === 'ok' && effect.at > op.completedAt + slack)
        add(
          'time',
          [op.marker],
          `${what}: stamped ${iso(effect.at)}, after it was answered at ${iso(op.completedAt)}`,
        )
    }
    const command = op.command
    if (command.op === 'rollout') {
      if (effect.kind !== 'rollout') continue
      if (effect.record.distribution !== command.distribution)
        add('wrong-effect', [op.marker], `${what}: ${effect.rollout} rolls out ${effect.record.distribution}`)
      if (op.outcome === 'ok' && op.rollout != null && op.rollout !== effect.rollout)
        add('wrong-effect', [op.marker], `${what}: answered ${op.rollout}, present as ${effect.rollout}`)
    } else {
      if (effect.kind !== 'action') continue
      if (effect.rollout !== command.id || effect.op !== command.op)
        add(
          'wrong-effect',
          [op.marker],
          `${what}: present as ${effect.op} of ${effect.rollout}, asked ${command.op} of ${command.id}`,
        )
    }
  }

  // 4. Effects nobody sent.
  for (const [marker, found] of effects) {
    if (markers.has(marker) || ignore.has(marker)) continue
    add('foreign', [marker], `an effect no command of the history carried: ${where(found)}`)
  }

  // 5. Real-time order: acknowledged before invoked → earlier in the log.
  const present = history
    .filter((op) => op.outcome !== 'fail')
    .map((op) => ({ op, effect: (effects.get(op.marker) ?? [])[0] }))
    .filter((x): x is { op: Operation; effect: Effect } => x.effect != null)
  const rolloutOps = present.filter((x) => x.effect.kind === 'rollout')
  for (const a of rolloutOps) {
    if (a.op.outcome !== 'ok') continue
    for (const b of rolloutOps) {
      if (a === b || !(a.op.completedAt < b.op.invokedAt)) continue
      if (rolloutNumber(a.effect.rollout) < rolloutNumber(b.effect.rollout)) continue
      add(
        'order',
        [a.op.marker, b.op.marker],
        `${a.op.marker} was acknowledged (${a.effect.rollout}) at ${iso(a.op.completedAt)}, before ` +
          `${b.op.marker} was sent at ${iso(b.op.invokedAt)}, yet ${b.op.marker} is ${b.effect.rollout}`,
      )
    }
  }
  const actionOps = present.filter((x) => x.effect.kind === 'action')
  for (const a of actionOps) {
    const ea = a.effect as ActionEffect
    if (a.op.outcome !== 'ok') continue
    for (const b of actionOps) {
      const eb = b.effect as ActionEffect
      if (a === b || ea.rollout !== eb.rollout || !(a.op.completedAt < b.op.invokedAt)) continue
      if (ea.position < eb.position) continue
      add(
        'order',
        [a.op.marker, b.op.marker],
        `on ${ea.rollout}, ${a.op.marker} (${ea.op}) was acknowledged before ${b.op.marker} (${eb.op}) ` +
          `was sent, yet stands at action ${ea.position}, after ${eb.position}`,
      )
    }
  }

  return { ok: violations.length === 0, violations, stats, absent }
}

/** `record[key]`, made by `make` when missing. */
export function entry<T>(record: Record<string, T>, key: string, make: () => T): T {
  const found = record[key]
  if (found !== undefined) return found
  const made = make()
  record[key] = made
  return made
}

function describe(command: Command): string {
  return command.op === 'rollout' ? `rollout ${command.distribution}` : `${command.op} ${command.id}`
}

function where(found: readonly Effect[]): string {
  return found
    .map((e) => (e.kind === 'rollout' ? `rollout ${e.rollout}` : `${e.op} #${e.position} of ${e.rollout}`))
    .join(', ')
}

function iso(ms: number): string {
  return new Date(ms).toISOString()
}
