import { setTimeout as sleep } from 'node:timers/promises'
import { Presets, SingleBar } from 'cli-progress'
import type { RolloutView } from '../manager/index.js'
import { ShoalError } from '../shared/errors.js'
import type { ApiClient } from './client.js'

export interface RolloutOptions {
  distribution: string
  strategy: string
  wait: boolean
  timeoutMs: number
  progress: boolean
}

/**
 * Starts a rollout and, with `wait`, follows it until every node runs the version
 * with all components ready (resolves) or a node reports failure, another rollout
 * supersedes it or time runs out (throws).
 */
export async function rollout(client: ApiClient, options: RolloutOptions): Promise<RolloutView> {
  const started = await client.post<RolloutView>('/api/rollouts', {
    json: { distribution: options.distribution, strategy: options.strategy },
  })
  if (!options.wait) return started
  return follow(client, started, options)
}

async function follow(
  client: ApiClient,
  started: RolloutView,
  options: RolloutOptions,
): Promise<RolloutView> {
  const path = `/api/rollouts/${started.id}`
  const deadline = Date.now() + options.timeoutMs
  const bar = options.progress && process.stderr.isTTY ? progressBar(started) : null
  try {
    for (;;) {
      const view = await client.get<RolloutView>(path)
      bar?.setTotal(view.nodes.total)
      bar?.update(view.nodes.done, { failed: view.nodes.failed })
      if (view.state === 'done') return view
      if (view.state === 'failed') throw new RolloutFailedError(view)
      if (view.state === 'superseded')
        throw new ShoalError(
          'ERR_ROLLOUT_SUPERSEDED',
          `rollout ${view.id} was superseded by a newer one`,
          409,
        )
      if (Date.now() > deadline)
        throw new ShoalError(
          'ERR_TIMEOUT',
          `rollout ${view.id} not done after ${Math.round(options.timeoutMs / 1000)} s: ${view.nodes.done}/${view.nodes.total} nodes ready`,
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
      .filter((m) => m.status === 'failed')
      .map((m) => `${m.id.slice(-8)}: ${m.error ?? 'failed'}`)
    super(
      'ERR_ROLLOUT_FAILED',
      `rollout ${view.id} of ${view.distribution} failed on ${failed.join('; ')}`,
      500,
    )
  }
}

function progressBar(view: RolloutView): SingleBar {
  const bar = new SingleBar(
    {
      format: `${view.distribution} [{bar}] {value}/{total} nodes ready {failed} failed`,
      stream: process.stderr,
      hideCursor: true,
    },
    Presets.shades_classic,
  )
  bar.start(view.nodes.total, view.nodes.done, { failed: view.nodes.failed })
  return bar
}

export function formatRollouts(list: RolloutView[]): string {
  if (list.length === 0) return 'no rollouts'
  return list
    .map(
      (r) =>
        `${r.id.padEnd(6)} ${r.distribution.padEnd(20)} ${r.strategy.padEnd(12)} ${r.state.padEnd(10)} ${r.nodes.done}/${r.nodes.total} ready${r.nodes.failed > 0 ? `, ${r.nodes.failed} failed` : ''}  ${r.startedAt}`,
    )
    .join('\n')
}
