import type { ApiClient } from '../../src/cli/client.js'
import { NoManagerError, NoQuorumError, type RolloutView } from '../../src/manager/index.js'
import { hasCode } from '../../src/shared/errors.js'
import { waitFor } from './wait.js'

/**
 * Starts a rollout or rollback through the API (`path`), retried while a loaded machine
 * leaves no manager for a moment, and waits for it to end (done, failed, rolled back, aborted).
 */
export async function roll(
  api: ApiClient,
  path: '/api/rollouts' | '/api/rollbacks',
  body: Record<string, unknown>,
  timeout = 90_000,
): Promise<RolloutView> {
  const started = await waitFor(
    `${path} to start`,
    () =>
      api.post<RolloutView>(path, { json: body }).catch((err: unknown) => {
        if (hasCode(err, NoQuorumError, NoManagerError)) return null
        throw err
      }),
    { timeout: 60_000, interval: 250 },
  )
  return waitFor(
    `rollout ${started.id} to end`,
    async () => {
      const view = await api.get<RolloutView>(`/api/rollouts/${started.id}`)
      return ['done', 'failed', 'rolled-back', 'aborted'].includes(view.state) ? view : null
    },
    { timeout, interval: 250 },
  )
}
