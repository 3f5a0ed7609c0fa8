import { setTimeout as sleep } from 'node:timers/promises'
import { Presets, SingleBar } from 'cli-progress'
import type { RolloutView } from '../manager/index.js'
import { hasCode, NotFoundError } from '../shared/index.js'
import type { ApiClient } from './client.js'
import { RolloutFailedError, WaitTimeoutError } from './errors.js'
import { shortId, table } from './table.js'
import { stateText } from './views.js'

export interface FollowOptions {
  timeoutMs: number
  progress: boolean
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

/** One rollout (`shoal rollout status ID`): its row, then where each of its nodes is. */
export function formatRollout(view: RolloutView): string {
  if (view.members.length === 0) return formatRollouts([view])
  const nodes = table(
    ['NODE', 'PROGRESS', 'RUNS', 'PHASE', 'ERROR'],
    view.members.map((m) => [shortId(m.id), m.status, m.distribution ?? '-', m.phase ?? '-', m.error ?? '']),
  )
  return `${formatRollouts([view])}\n\n${nodes}`
}
