import type { Command } from 'commander'
import { apiClient } from './client.js'
import {
  type ClientOptions,
  clientOptions,
  examples,
  positiveInt,
  print,
  type WaitOptions,
  waitOptions,
} from './command-options.js'

type NodeOperationOptions = ClientOptions & WaitOptions

/** Nodes: machines launched and retired through the infrastructure provider. */
export function addNodeCommands(program: Command): void {
  configureNodeList(program.command('nodes'), 'node list')

  const node = program
    .command('node')
    .summary('launch, copy, remove and list nodes through the provider')
    .description(
      'launch, copy, remove and list nodes through the infrastructure provider (docs/providers.md)',
    )
    .addHelpText(
      'after',
      `\nadd, copy and remove start an operation; --wait follows it (exit code 1 if it fails).\n${examples(
        'shoal node list',
        'shoal node add --count 2 --like 12D3KooWQm… --wait',
        'shoal node remove 3f9a1c --wait',
      )}`,
    )

  configureNodeList(node.command('list'), 'nodes')

  clientOptions(
    waitOptions(
      node
        .command('add')
        .description('launch nodes that join this cluster and run its release')
        .option('--count <n>', 'how many', positiveInt, 1)
        .option('--like <id>', 'copy the roles and tags (and provider) of this member')
        .option('--provider <name>', 'provider to launch through (default: local)')
        .addHelpText(
          'after',
          examples(
            'shoal node add --wait',
            'shoal node add --count 3 --provider ec2 --like 3f9a1c --wait --json',
          ),
        ),
      'block until every new node is ready; exit code 1 if one fails',
    ),
  ).action(async (opts: NodeOperationOptions & { count: number; like?: string; provider?: string }) => {
    const { startOperation } = await import('./nodes.js')
    const body = {
      count: opts.count,
      ...(opts.like == null ? {} : { like: opts.like }),
      ...(opts.provider == null ? {} : { provider: opts.provider }),
    }
    await startOperation(apiClient(opts), '/api/nodes', body, opts)
  })

  clientOptions(
    waitOptions(
      node
        .command('copy')
        .argument('<id>', 'member to copy (full id or its last characters)')
        .description('launch one more node like this one: same cluster, roles, tags and provider')
        .addHelpText('after', examples('shoal node copy 3f9a1c --wait')),
      'block until the new node is ready; exit code 1 if it fails',
    ),
  ).action(async (id: string, opts: NodeOperationOptions) => {
    const { startOperation } = await import('./nodes.js')
    await startOperation(apiClient(opts), `/api/nodes/${encodeURIComponent(id)}/copy`, {}, opts)
  })

  clientOptions(
    waitOptions(
      node
        .command('remove')
        .argument('<id>', 'member to remove (full id or its last characters)')
        .description('drain the node (no new requests, in-flight ones finish), make it leave, and stop it')
        .option('--force', 'terminate it through its provider even if it cannot be drained or does not leave')
        .addHelpText(
          'after',
          examples('shoal node remove 3f9a1c --wait', 'shoal node remove 3f9a1c --force'),
        ),
      'block until it is gone; exit code 1 if that fails',
    ),
  ).action(async (id: string, opts: NodeOperationOptions & { force?: boolean }) => {
    const { startOperation } = await import('./nodes.js')
    await startOperation(
      apiClient(opts),
      `/api/nodes/${encodeURIComponent(id)}/remove`,
      { force: Boolean(opts.force) },
      opts,
    )
  })
}

/** `shoal nodes`, also `shoal node list`. */
function configureNodeList(command: Command, alias: string): Command {
  return clientOptions(
    command
      .summary(`members with their provider state (also: shoal ${alias})`)
      .description(
        'members with their provider state (launching, joining, fetching, ready, draining, removing)',
      )
      .addHelpText('after', examples('shoal nodes', 'shoal node list --json')),
  ).action(async (opts: ClientOptions) => {
    const { formatNodes } = await import('./nodes.js')
    const list = await apiClient(opts).get<unknown[]>('/api/nodes')
    print(opts.json, list, () => formatNodes(list as never))
  })
}
