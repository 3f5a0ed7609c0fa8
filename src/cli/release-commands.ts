import type { Command } from 'commander'
import type { UnpublishedView } from '../api/index.js'
import { DISTRIBUTION_NAME, type DistributionView, VERSION } from '../artifacts/index.js'
import { parseBytes } from '../shared/index.js'
import { apiClient } from './client.js'
import { type ClientOptions, clientOptions, examples, positiveInt, print } from './command-options.js'
import { UsageError } from './errors.js'
import { EXIT } from './exit-codes.js'
import { formatBytes } from './table.js'
import { formatAuditTrail, formatDistributions, type HistoryEntry } from './views.js'

/** Releases: publishing signed distribution versions and what the agents hold. */
export function addReleaseCommands(program: Command): void {
  clientOptions(
    program
      .command('publish')
      .argument('<dir>', 'folder whose regular files become the artifacts (see docs/distributions.md)')
      .description('sign and publish a distribution version through the addressed agent')
      .requiredOption('--name <name>', 'distribution name')
      .requiredOption('--version <version>', 'version')
      .requiredOption('--key <file>', 'private signing key (from "shoal key new")')
      .option('--chunk-size <bytes>', 'chunk size for new artifacts (default 1M)')
      .addHelpText(
        'after',
        `\nOnly artifacts the agent lacks are uploaded (a progress bar on a terminal); peers then fetch them.\n${examples(
          'shoal publish ./build --name educa --version 1.1 --key publisher.key',
          'shoal publish ./build --name educa --version 1.1 --key publisher.key --json | jq .uploaded',
        )}`,
      ),
  ).action(
    async (
      dir: string,
      opts: ClientOptions & { name: string; version: string; key: string; chunkSize?: string },
    ) => {
      const { publish } = await import('./publish.js')
      const result = await publish(apiClient(opts), {
        dir,
        name: opts.name,
        version: opts.version,
        keyFile: opts.key,
        ...(opts.chunkSize == null ? {} : { chunkSize: parseBytes(opts.chunkSize) }),
        progress: !opts.json,
      })
      print(opts.json, result, () => {
        const d = result.distribution
        const verb =
          result.result === 'added' ? 'published' : 'already published (same content, nothing changed):'
        return `${verb} ${d.name}@${d.version}: ${d.artifacts} artifact(s), ${formatBytes(d.bytes)}; uploaded ${result.uploaded.artifacts} new artifact(s) (${formatBytes(result.uploaded.bytes)})`
      })
    },
  )

  clientOptions(
    program
      .command('unpublish')
      .argument('<distribution>', 'the version to remove: NAME@VERSION')
      .summary('remove a version that was never rolled out from every agent')
      .description(
        'remove a version that was never rolled out from every agent of the cluster: its retention slot and the ' +
          'blobs only it used are freed, and its NAME@VERSION can never be published again. Refused ' +
          '(ERR_VERSION_IN_USE, exit code 4) for a version that runs or is being installed on a node, that the ' +
          'cluster wants, or that a rollout or rollback moved to or from (kept for rollback)',
      )
      .addHelpText(
        'after',
        examples(
          '# published with a mistake, never rolled out',
          'shoal unpublish educa@1.2',
          'shoal unpublish educa@1.2 --json | jq .by',
        ),
      ),
  ).action(async (distribution: string, opts: ClientOptions) => {
    const [name = '', version = ''] = distribution.split(/@(.*)/s)
    if (!DISTRIBUTION_NAME.test(name) || !VERSION.test(version))
      throw new UsageError(`"${distribution}" is not NAME@VERSION (for example educa@1.2)`)
    const result = await apiClient(opts).request<UnpublishedView>(
      'DELETE',
      `/api/distributions/${encodeURIComponent(name)}/${encodeURIComponent(version)}`,
    )
    print(opts.json, result, () =>
      result.result === 'unpublished'
        ? `unpublished ${result.id}: every agent drops it and will not take it again`
        : `${result.id} was already unpublished (by ${result.by} at ${result.at}); nothing changed`,
    )
  })

  clientOptions(
    program
      .command('distributions')
      .argument('[distribution]', 'only this distribution: NAME (every version) or NAME@VERSION')
      .summary('versions this agent knows and whether it holds them; --watch follows transfers')
      .description('distribution versions this agent knows and whether it holds them (COMPLETE)')
      .option(
        '-w, --watch',
        'follow transfers: a progress bar per version this agent is fetching, until it holds them all',
      )
      .option('--timeout <seconds>', 'with --watch: give up after this long, exit code 6', positiveInt, 600)
      .addHelpText(
        'after',
        examples(
          'shoal distributions',
          '# wait until this agent holds educa@1.1, then roll it out',
          'shoal distributions educa@1.1 --watch && shoal rollout educa@1.1 --wait',
        ),
      ),
  ).action(async (only: string | undefined, opts: ClientOptions & { watch?: boolean; timeout: number }) => {
    const client = apiClient(opts)
    const { selectDistributions, watchDistributions } = await import('./transfers.js')
    const list = opts.watch
      ? await watchDistributions(client, {
          only: only ?? null,
          timeoutMs: opts.timeout * 1000,
          progress: !opts.json,
        })
      : selectDistributions(await client.get<DistributionView[]>('/api/distributions'), only ?? null)
    print(opts.json, list, () => formatDistributions(list))
  })

  configureHistory(program.command('history'))

  clientOptions(
    program
      .command('verify')
      .summary("re-hash the agent's stored blobs (exit code 1 if one was corrupt)")
      .description(
        "re-hash every blob in the addressed agent's store; corrupt blobs are dropped and fetched again (exit code 1 if any)",
      )
      .addHelpText('after', examples('shoal verify', 'shoal verify --api 10.0.0.6:7070 --json')),
  ).action(async (opts: ClientOptions) => {
    const result = await apiClient(opts).post<{ checked: number; corrupt: string[] }>('/api/verify', {
      timeoutMs: 60 * 60_000,
    })
    print(opts.json, result, () =>
      result.corrupt.length === 0
        ? `verified ${result.checked} blob(s): all intact`
        : `verified ${result.checked} blob(s): ${result.corrupt.length} corrupt, removed and to be fetched again:\n${result.corrupt.join('\n')}`,
    )
    if (result.corrupt.length > 0) process.exitCode = EXIT.failed
  })
}

/** `shoal history NAME`, also `shoal rollout history NAME`. */
export function configureHistory(command: Command): Command {
  return clientOptions(
    command
      .argument('<name>', 'distribution name')
      .summary("a distribution's kept versions and the rollouts to each")
      .description(
        'every kept version of a distribution, oldest first, with who holds it, and the rollouts and rollbacks to each (who asked, when, outcome)',
      )
      .addHelpText('after', examples('shoal history educa', 'shoal history educa --json | jq -r ".[].id"')),
  ).action(async (name: string, opts: ClientOptions) => {
    const list = await apiClient(opts).get<HistoryEntry[]>(`/api/distributions/${encodeURIComponent(name)}`)
    print(opts.json, list, () => `${formatDistributions(list)}\n\n${formatAuditTrail(list)}`)
  })
}
