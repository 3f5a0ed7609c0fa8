import { setTimeout as sleep } from 'node:timers/promises'
import { Presets, SingleBar } from 'cli-progress'
import { type RolloutView, showFigure, type Verdict } from '../manager/index.js'
import { hasCode, NotFoundError } from '../shared/index.js'
import type { ApiClient } from './client.js'
import { RolloutFailedError, UsageError, WaitTimeoutError } from './errors.js'
import { shortId, table } from './table.js'
import { stateText } from './views.js'

export interface FollowOptions {
  timeoutMs: number
  progress: boolean
  /** JSON on stdout: each step's verdict line goes to stderr instead. */
  json?: boolean
}

/** States a rollout ends in; only `done` is a success. */
const FINAL = new Set(['done', 'failed', 'rolled-back', 'aborted', 'superseded'])

/** Starts a rollout (POST /api/rollouts) and, with `wait`, follows it to its end. */
export async function rollout(
  client: ApiClient,
  body: Record<string, unknown>,
  wait: FollowOptions | null,
): Promise<RolloutView> {
  const started = await client.post<RolloutView>('/api/rollouts', { json: body })
  return wait == null ? started : follow(client, started.id, wait)
}

/** Starts a rollback (POST /api/rollbacks) and, with `wait`, follows it. */
export async function rollback(
  client: ApiClient,
  body: Record<string, unknown>,
  wait: FollowOptions | null,
): Promise<RolloutView> {
  const started = await client.post<RolloutView>('/api/rollbacks', { json: body })
  return wait == null ? started : follow(client, started.id, wait)
}

/**
 * Follows a rollout until it ends (resolves on `done`, throws RolloutFailedError
 * on any other end, WaitTimeoutError after `timeoutMs`) or, with `untilWaiting`,
 * until it waits for approval. With `progress`, a bar on stderr shows nodes done
 * out of the rollout's nodes, when stderr is a terminal.
 */
export async function follow(
  client: ApiClient,
  id: string,
  options: FollowOptions & { untilWaiting?: boolean },
): Promise<RolloutView> {
  const deadline = Date.now() + options.timeoutMs
  const notFoundUntil = Date.now() + 5000
  let bar: SingleBar | null = null
  let verdictsShown: number | null = null
  try {
    for (;;) {
      // A rollout started through another agent may take a moment to reach this one.
      const view = await client.get<RolloutView>(`/api/rollouts/${id}`).catch((err: unknown) => {
        if (hasCode(err, NotFoundError) && Date.now() < notFoundUntil) return null
        throw err
      })
      if (view == null) {
        await sleep(200)
        continue
      }
      // Each step's verdict once, as it comes (those given before the watch began are in the final table).
      const verdicts = view.verdicts ?? []
      if (verdictsShown != null && verdicts.length > verdictsShown) {
        const lines = verdicts.slice(verdictsShown).map((v) => `${view.id} ${verdictLine(v)}\n`)
        bar?.stop()
        bar = null
        for (const line of lines) (options.json ? process.stderr : process.stdout).write(line)
      }
      verdictsShown = verdicts.length
      if (options.progress && process.stderr.isTTY) {
        bar ??= progressBar(view)
        bar.setTotal(view.nodes.total)
        bar.update(view.nodes.done, { state: view.state, failed: view.nodes.failed })
      }
      if (view.state === 'done') return view
      if (options.untilWaiting && view.state === 'waiting-approval') return view
      if (FINAL.has(view.state)) throw rolloutFailed(view)
      if (Date.now() > deadline)
        throw new WaitTimeoutError(
          `rollout ${view.id} not done after ${Math.round(options.timeoutMs / 1000)} s: ${view.state}, ${view.nodes.done}/${view.nodes.total} nodes done; follow it with "shoal rollout status ${view.id} --watch"`,
        )
      await sleep(300)
    }
  } finally {
    bar?.stop()
  }
}

/** A followed rollout ended other than `done`: what went wrong, and the rollout. */
export function rolloutFailed(view: RolloutView): RolloutFailedError {
  const failed = view.members
    .filter((m) => m.status === 'failed' || m.error != null)
    .map((m) => `${m.id.slice(-8)}: ${m.error ?? m.status}`)
  const detail = [view.reason, ...failed].filter(Boolean).join('; ')
  return new RolloutFailedError(
    `rollout ${view.id} of ${view.distribution} ended ${view.state}${detail ? `: ${detail}` : ''}`,
    { rollout: view },
  )
}

function progressBar(view: RolloutView): SingleBar {
  const bar = new SingleBar(
    {
      format: `${view.id} ${view.distribution} [{bar}] {value}/{total} nodes done, {failed} failed  {state}`,
      stream: process.stderr,
      hideCursor: true,
    },
    Presets.shades_classic,
  )
  bar.start(view.nodes.total, view.nodes.done, { failed: view.nodes.failed, state: view.state })
  return bar
}

/** Rollouts as a table, newest first as the API lists them. */
export function formatRollouts(list: RolloutView[]): string {
  if (list.length === 0) return 'no rollouts'
  return table(
    ['ROLLOUT', 'KIND', 'FROM', 'TO', 'STRATEGY', 'STATE', 'NODES', 'STARTED'],
    list.map((r) => [
      r.id,
      r.kind,
      r.from ?? '-',
      r.distribution,
      r.strategy,
      stateText(r.state, r.reason),
      `${r.nodes.done}/${r.nodes.total} done${r.nodes.failed > 0 ? `, ${r.nodes.failed} failed` : ''}`,
      r.startedAt,
    ]),
  )
}

/** One rollout (`shoal rollout status ID`): its row, its steps and verdicts, then where each of its nodes is. */
export function formatRollout(view: RolloutView): string {
  const parts = [formatRollouts([view])]
  const steps = formatSteps(view)
  if (steps != null) parts.push(steps)
  if (view.members.length > 0)
    parts.push(
      table(
        ['NODE', 'PROGRESS', 'RUNS', 'PHASE', 'ERROR'],
        view.members.map((m) => [
          shortId(m.id),
          m.status,
          m.distribution ?? '-',
          m.phase ?? '-',
          m.error ?? '',
        ]),
      ),
    )
  return parts.join('\n\n')
}

/** A progressive rollout's analysis, its window under way and each verdict with the figures. */
function formatSteps(view: RolloutView): string | null {
  if (view.analysis == null && view.steps == null) return null
  const lines: string[] = []
  if (view.steps != null) lines.push(`steps: ${view.steps.map((p) => `${p}%`).join(' → ')}`)
  if (view.analysis != null)
    lines.push(
      `analysis: ${view.analysis.conditions.join(', ')}; window ${view.analysis.intervalMs / 1000} s, at least ${view.analysis.minRequests} requests, inconclusive → ${view.analysis.onMissing}`,
    )
  if (view.window != null) {
    const left = Math.max(0, Math.ceil((Date.parse(view.window.to) - Date.now()) / 1000))
    lines.push(`step ${view.window.step + 1}: gathering traffic, ${left} s left`)
  }
  const verdicts = view.verdicts ?? []
  if (verdicts.length > 0)
    lines.push(
      table(
        ['STEP', 'SHARE', 'VERDICT', 'NEW VERSION', 'OLD VERSION', 'DECISION'],
        verdicts.map((v) => [
          String(v.step + 1),
          `${v.percent}%`,
          v.verdict,
          figuresText(v.canary),
          figuresText(v.baseline),
          v.decision,
        ]),
      ),
    )
  return lines.join('\n')
}

/** `200 req, 10% errors, p99 12 ms`. */
function figuresText(f: Verdict['canary']): string {
  const rate = Math.round(f.errorRate * 10_000) / 100
  return `${f.requests} req, ${rate}% errors, p99 ${f.p99Ms == null ? '-' : `${f.p99Ms} ms`}`
}

/** Checks `--analysis` conditions as the manager will: a usage error (exit code 2) before anything is sent. */
export async function checkConditions(conditions: readonly string[]): Promise<void> {
  const { parseCondition } = await import('../manager/index.js')
  for (const text of conditions)
    try {
      parseCondition(text)
    } catch (err) {
      throw new UsageError(`--analysis: ${(err as Error).message}`)
    }
}

/** One verdict as `shoal rollout status --watch` prints it when it comes. */
export function verdictLine(v: Verdict): string {
  const checks = v.checks
    .map(
      (c) =>
        `${c.condition} ${c.ok == null ? 'not judged' : c.ok ? 'held' : 'BROKEN'} (${showFigure(c.condition, c.value)}, limit ${showFigure(c.condition, c.limit)})`,
    )
    .join('; ')
  return `step ${v.step + 1} (${v.percent}%): ${v.verdict.toUpperCase()}: ${checks}; new version ${figuresText(v.canary)}; old version ${figuresText(v.baseline)} → ${v.decision}`
}
