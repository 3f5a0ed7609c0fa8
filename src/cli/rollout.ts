import { setTimeout as sleep } from 'node:timers/promises'
import { Presets, SingleBar } from 'cli-progress'
import type { RolloutView } from '../manager/index.js'
import { ShoalError } from '../shared/errors.js'
import type { ApiClient } from './client.js'

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
 * Follows a rollout until it ends (resolves on `done`, throws on anything
 * else) or, with `untilWaiting`, until it waits for approval. A progress bar on
 * a terminal shows nodes done out of the rollout's nodes.
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
        if ((err as { code?: string }).code === 'ERR_NOT_FOUND' && Date.now() < notFoundUntil) return null
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
      if (FINAL.has(view.state)) throw new RolloutFailedError(view)
      if (Date.now() > deadline)
        throw new ShoalError(
          'ERR_TIMEOUT',
          `rollout ${view.id} not done after ${Math.round(options.timeoutMs / 1000)} s: ${view.state}, ${view.nodes.done}/${view.nodes.total} nodes done`,
          504,
        )
      await sleep(300)
    }
  } finally {
    bar?.stop()
  }
}

export class RolloutFailedError extends ShoalError {
  constructor(view: RolloutView) {
    const failed = view.members
      .filter((m) => m.status === 'failed' || m.error != null)
      .map((m) => `${m.id.slice(-8)}: ${m.error ?? m.status}`)
    const detail = [view.reason, ...failed].filter(Boolean).join('; ')
    super(
      'ERR_ROLLOUT_FAILED',
      `rollout ${view.id} of ${view.distribution} ended ${view.state}${detail ? `: ${detail}` : ''}`,
      500,
    )
  }
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

export function formatRollouts(list: RolloutView[]): string {
  if (list.length === 0) return 'no rollouts'
  return list
    .map(
      (r) =>
        `${r.id.padEnd(5)} ${r.kind.padEnd(8)} ${`${r.from ?? '-'} → ${r.distribution}`.padEnd(28)} ${r.strategy.padEnd(11)} ${r.state.padEnd(16)} ${r.nodes.done}/${r.nodes.total} done${r.nodes.failed > 0 ? `, ${r.nodes.failed} failed` : ''}  ${r.startedAt}${r.reason ? `  (${r.reason})` : ''}`,
    )
    .join('\n')
}

/** `--max-unavailable 2` or `--max-unavailable 25%`. */
export function parseUnavailable(value: string): { maxUnavailable?: number; maxUnavailablePercent?: number } {
  const match = /^(\d+)(%?)$/.exec(value.trim())
  if (match == null || Number(match[1]) < 1)
    throw new ShoalError('ERR_BAD_REQUEST', `--max-unavailable wants N or P% (got "${value}")`, 400)
  return match[2] === '%' ? { maxUnavailablePercent: Number(match[1]) } : { maxUnavailable: Number(match[1]) }
}
