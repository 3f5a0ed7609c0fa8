#!/usr/bin/env -S node --max-semi-space-size=1
// A 1 MiB young generation keeps an idle agent's memory ~20 MB lower (docs/decisions.md).
import { Command, InvalidArgumentError, Option } from 'commander'
import type { MemberView, StatusView } from '../api/index.js'
import type { DistributionView } from '../artifacts/index.js'
import type { RolloutView } from '../manager/index.js'
import type { TimerPreset } from '../membership/index.js'
import type { RuntimeStatus } from '../runtime/index.js'
import { ShoalError } from '../shared/errors.js'
import { isLogLevel, type LogLevel } from '../shared/logger.js'
import { parseBytes } from '../shared/units.js'
import { VERSION } from '../shared/version.js'
import { apiClient } from './client.js'
import {
  formatAuditTrail,
  formatComponents,
  formatDistributions,
  formatMembers,
  formatStatus,
  type HistoryEntry,
} from './views.js'

const collect = (value: string, previous: string[] = []) => [...previous, value]

/** `--tag zone=a --tag tier=web` → {zone: 'a', tier: 'web'}. */
function parseTags(values: string[]): Record<string, string> {
  const tags: Record<string, string> = {}
  for (const value of values) {
    const at = value.indexOf('=')
    if (at < 1) throw new ShoalError('ERR_BAD_REQUEST', `--tag wants KEY=VALUE (got "${value}")`, 400)
    tags[value.slice(0, at)] = value.slice(at + 1)
  }
  return tags
}

function positiveInt(value: string): number {
  const n = Number(value)
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('must be a whole number >= 1')
  return n
}

function print(json: boolean, data: unknown, human: () => string): void {
  console.log(json ? JSON.stringify(data, null, 2) : human())
}

const program = new Command()
  .name('shoal')
  .description('Peer-to-peer cluster membership and deployment agent')
  .version(VERSION)
  .showHelpAfterError()
  // Root options only before the command: `publish --version 1.0` is the distribution's version.
  .enablePositionalOptions()

program
  .command('agent')
  .description('run an agent until SIGTERM/SIGINT, then leave the cluster gracefully')
  .requiredOption('--cluster <name>', 'cluster name (nodes with the same name and secret form one cluster)')
  .option('--data <dir>', 'data folder (identity, state); default ~/.shoal/<cluster>')
  .option(
    '--listen <multiaddr>',
    'libp2p listen address, repeatable (default /ip4/0.0.0.0/tcp/7946)',
    collect,
  )
  .option(
    '--api <host:port>',
    'admin API address (default 127.0.0.1:7070; other than loopback needs --tokens)',
  )
  .option('--tokens <file>', 'JSON file of API tokens and their roles (docs/operations.md)')
  .option('--bootstrap <multiaddr>', 'peer to join through, repeatable', collect)
  .option(
    '--secret-file <file>',
    'cluster secret (libp2p private network key): nodes without it cannot connect',
  )
  .option('--trust <pubkey-file>', 'public key of a trusted publisher, repeatable', collect)
  .option('--no-mdns', 'do not discover peers by mDNS on the local network')
  .option(
    '--advertise-host <host>',
    "host peers reach this node's components through (default: the --listen address, or the first non-loopback one)",
  )
  .addOption(new Option('--preset <preset>', 'timer preset').choices(['lan', 'cloud', 'test']).default('lan'))
  .option('--max-artifact-size <bytes>', 'largest artifact accepted (e.g. 512M; default 2G)')
  .option('--retention <n>', 'versions kept per distribution name (default 5)', positiveInt)
  .option(
    '--upload-rate <bytes>',
    'limit for serving artifacts to peers, per second (e.g. 20M; default unlimited)',
  )
  .option(
    '--download-rate <bytes>',
    'limit for fetching artifacts from peers, per second (default unlimited)',
  )
  .addOption(
    new Option('--log-level <level>', 'log level')
      .choices(['debug', 'info', 'warn', 'error'])
      .default('info'),
  )
  .option('--role <role>', 'a role this node announces (copies keep it), repeatable', collect)
  .option('--tag <key=value>', 'a tag this node announces (copies keep it), repeatable', collect)
  .option('--providers <file>', 'JSON file configuring the static and ec2 providers (docs/providers.md)')
  .option(
    '--discover-ec2 <region>',
    'at start, join EC2 instances tagged shoal:cluster=<cluster> (needs ec2:DescribeInstances)',
  )
  .option('--discover-ec2-endpoint <url>', 'with --discover-ec2: the API endpoint of an EC2-compatible cloud')
  .option('--provider <name>', 'set by a provider: the provider that launched this node')
  .option('--handle <handle>', "set by a provider: this node's handle there")
  .action(async (opts) => {
    if (!isLogLevel(opts.logLevel))
      throw new ShoalError('ERR_CONFIG', `unknown log level ${opts.logLevel}`, 400)
    // The agent stack (libp2p, level) loads only for commands that need it: client commands stay fast.
    const { Agent } = await import('../bootstrap/index.js')
    const artifacts = {
      ...(opts.maxArtifactSize == null ? {} : { maxArtifactBytes: parseBytes(opts.maxArtifactSize) }),
      ...(opts.retention == null ? {} : { retention: opts.retention as number }),
      ...(opts.uploadRate == null ? {} : { uploadRate: parseBytes(opts.uploadRate) }),
      ...(opts.downloadRate == null ? {} : { downloadRate: parseBytes(opts.downloadRate) }),
    }
    const agent = await Agent.start({
      artifacts,
      cluster: opts.cluster,
      dataDir: opts.data,
      listen: opts.listen,
      api: opts.api,
      tokensFile: opts.tokens ?? null,
      bootstrap: opts.bootstrap,
      secretFile: opts.secretFile ?? null,
      trust: opts.trust,
      mdns: opts.mdns,
      advertiseHost: opts.advertiseHost ?? null,
      preset: opts.preset as TimerPreset,
      logLevel: opts.logLevel as LogLevel,
      providersFile: opts.providers ?? null,
      discoverEc2:
        opts.discoverEc2 == null
          ? null
          : {
              region: opts.discoverEc2 as string,
              ...(opts.discoverEc2Endpoint == null ? {} : { endpoint: opts.discoverEc2Endpoint as string }),
            },
      node: {
        provider: opts.provider ?? null,
        handle: opts.handle ?? null,
        roles: (opts.role as string[] | undefined) ?? [],
        tags: parseTags((opts.tag as string[] | undefined) ?? []),
      },
    })
    // Removed through another agent (`shoal node remove`): it drained, left and stopped.
    void agent.retired.then(() => process.exit(0))
    console.log(
      JSON.stringify({
        id: agent.id,
        cluster: agent.config.cluster,
        api: agent.apiUrl,
        addrs: agent.membership.self.addrs,
      }),
    )
    let signals = 0
    const onSignal = (signal: NodeJS.Signals) => {
      if (++signals > 1) {
        console.error(`second ${signal}: exiting without finishing the graceful leave`)
        process.exit(130)
      }
      void agent.stop({ leave: true }).then(() => process.exit(0))
    }
    process.on('SIGINT', onSignal)
    process.on('SIGTERM', onSignal)
  })

const node = program
  .command('node')
  .description('nodes through the infrastructure provider (docs/providers.md)')

node
  .command('add')
  .description('launch nodes that join this cluster and run its release')
  .option('--count <n>', 'how many', positiveInt, 1)
  .option('--like <id>', 'copy the roles and tags (and provider) of this member')
  .option('--provider <name>', 'provider to launch through (default: local)')
  .option('--wait', 'block until every new node is ready; exit non-zero if one fails')
  .option('--timeout <seconds>', 'with --wait: give up after this long (default 600)', positiveInt, 600)
  .option('--api <url>', 'agent API (default $SHOAL_API or http://127.0.0.1:7070)')
  .option('--token <token>', 'API token (default $SHOAL_TOKEN); needed when the agent runs with --tokens')
  .option('--json', 'print JSON')
  .action(async (opts) => {
    const { startOperation } = await import('./nodes.js')
    const body = {
      count: opts.count as number,
      ...(opts.like == null ? {} : { like: opts.like }),
      ...(opts.provider == null ? {} : { provider: opts.provider }),
    }
    await startOperation(apiClient(opts), '/api/nodes', body, opts)
  })

node
  .command('copy')
  .argument('<id>', 'member to copy (full id or its last characters)')
  .description('launch one more node like this one: same cluster, roles, tags and provider')
  .option('--wait', 'block until the new node is ready; exit non-zero if it fails')
  .option('--timeout <seconds>', 'with --wait: give up after this long (default 600)', positiveInt, 600)
  .option('--api <url>', 'agent API (default $SHOAL_API or http://127.0.0.1:7070)')
  .option('--token <token>', 'API token (default $SHOAL_TOKEN); needed when the agent runs with --tokens')
  .option('--json', 'print JSON')
  .action(async (id: string, opts) => {
    const { startOperation } = await import('./nodes.js')
    await startOperation(apiClient(opts), `/api/nodes/${encodeURIComponent(id)}/copy`, {}, opts)
  })

node
  .command('remove')
  .argument('<id>', 'member to remove (full id or its last characters)')
  .description('drain the node (no new requests, in-flight ones finish), make it leave, and stop it')
  .option('--force', 'terminate it through its provider even if it cannot be drained or does not leave')
  .option('--wait', 'block until it is gone; exit non-zero if that fails')
  .option('--timeout <seconds>', 'with --wait: give up after this long (default 600)', positiveInt, 600)
  .option('--api <url>', 'agent API (default $SHOAL_API or http://127.0.0.1:7070)')
  .option('--token <token>', 'API token (default $SHOAL_TOKEN); needed when the agent runs with --tokens')
  .option('--json', 'print JSON')
  .action(async (id: string, opts) => {
    const { startOperation } = await import('./nodes.js')
    await startOperation(
      apiClient(opts),
      `/api/nodes/${encodeURIComponent(id)}/remove`,
      { force: Boolean(opts.force) },
      opts,
    )
  })

program
  .command('nodes')
  .description('members with their provider state (launching, joining, fetching, ready, draining, removing)')
  .option('--api <url>', 'agent API (default $SHOAL_API or http://127.0.0.1:7070)')
  .option('--token <token>', 'API token (default $SHOAL_TOKEN); needed when the agent runs with --tokens')
  .option('--json', 'print JSON')
  .action(async (opts) => {
    const { formatNodes } = await import('./nodes.js')
    const list = await apiClient(opts).get<unknown[]>('/api/nodes')
    print(Boolean(opts.json), list, () => formatNodes(list as never))
  })

program
  .command('members')
  .description("the addressed agent's membership view")
  .option('--api <url>', 'agent API (default $SHOAL_API or http://127.0.0.1:7070)')
  .option('--token <token>', 'API token (default $SHOAL_TOKEN); needed when the agent runs with --tokens')
  .option('--json', 'print JSON')
  .action(async (opts) => {
    const members = await apiClient(opts).get<MemberView[]>('/api/members')
    print(Boolean(opts.json), members, () => formatMembers(members))
  })

program
  .command('status')
  .description('this node, the manager, the active distribution, rollouts')
  .option('--api <url>', 'agent API (default $SHOAL_API or http://127.0.0.1:7070)')
  .option('--token <token>', 'API token (default $SHOAL_TOKEN); needed when the agent runs with --tokens')
  .option('--json', 'print JSON')
  .action(async (opts) => {
    const status = await apiClient(opts).get<StatusView>('/api/status')
    print(Boolean(opts.json), status, () => formatStatus(status))
  })

const secret = program.command('secret').description('cluster secrets')
secret
  .command('new')
  .argument('<file>', 'where to write the secret (mode 0600)')
  .description('write a new cluster secret; pass it to every agent with --secret-file')
  .action(async (file: string) => {
    const { writeNewSecret } = await import('../bootstrap/index.js')
    await writeNewSecret(file)
    console.log(`wrote cluster secret to ${file}; give it to every agent with --secret-file ${file}`)
  })

const key = program.command('key').description('publisher signing keys')
key
  .command('new')
  .argument('<file>', 'private key file (mode 0600); the public key goes to FILE.pub')
  .description('write a new ed25519 signing key pair; agents trust FILE.pub with --trust')
  .action(async (file: string) => {
    const { writeNewKeyPair } = await import('../artifacts/index.js')
    const { id, publicFile } = await writeNewKeyPair(file)
    console.log(
      `wrote signing key ${id} to ${file} and ${publicFile}; start agents with --trust ${publicFile}`,
    )
  })

program
  .command('publish')
  .argument('<dir>', 'folder whose regular files become the artifacts (see docs/distributions.md)')
  .description('sign and publish a distribution version through the addressed agent')
  .requiredOption('--name <name>', 'distribution name')
  .requiredOption('--version <version>', 'version')
  .requiredOption('--key <file>', 'private signing key (from "shoal key new")')
  .option('--chunk-size <bytes>', 'chunk size for new artifacts (default 1M)')
  .option('--api <url>', 'agent API (default $SHOAL_API or http://127.0.0.1:7070)')
  .option('--token <token>', 'API token (default $SHOAL_TOKEN); needed when the agent runs with --tokens')
  .option('--json', 'print JSON')
  .action(async (dir: string, opts) => {
    const { publish } = await import('./publish.js')
    const result = await publish(apiClient(opts), {
      dir,
      name: opts.name,
      version: opts.version,
      keyFile: opts.key,
      ...(opts.chunkSize == null ? {} : { chunkSize: parseBytes(opts.chunkSize) }),
      progress: !opts.json,
    })
    print(Boolean(opts.json), result, () => {
      const d = result.distribution
      const verb =
        result.result === 'added' ? 'published' : 'already published (same content, nothing changed):'
      return `${verb} ${d.name}@${d.version}: ${d.artifacts} artifact(s), ${d.bytes} bytes, uploaded ${result.uploaded.artifacts} new artifact(s) (${result.uploaded.bytes} bytes)`
    })
  })

program
  .command('distributions')
  .description('distribution versions this agent knows and whether it holds them')
  .option('--api <url>', 'agent API (default $SHOAL_API or http://127.0.0.1:7070)')
  .option('--token <token>', 'API token (default $SHOAL_TOKEN); needed when the agent runs with --tokens')
  .option('--json', 'print JSON')
  .action(async (opts) => {
    const list = await apiClient(opts).get<DistributionView[]>('/api/distributions')
    print(Boolean(opts.json), list, () => formatDistributions(list))
  })

program
  .command('history')
  .argument('<name>', 'distribution name')
  .description(
    'every kept version of a distribution, oldest first, with who holds it, and the rollouts and rollbacks to each (who asked, when, outcome)',
  )
  .option('--api <url>', 'agent API (default $SHOAL_API or http://127.0.0.1:7070)')
  .option('--token <token>', 'API token (default $SHOAL_TOKEN); needed when the agent runs with --tokens')
  .option('--json', 'print JSON')
  .action(async (name: string, opts) => {
    const list = await apiClient(opts).get<HistoryEntry[]>(`/api/distributions/${encodeURIComponent(name)}`)
    print(Boolean(opts.json), list, () => `${formatDistributions(list)}\n\n${formatAuditTrail(list)}`)
  })

program
  .command('verify')
  .description(
    "re-hash every blob in the addressed agent's store; corrupt blobs are dropped and fetched again",
  )
  .option('--api <url>', 'agent API (default $SHOAL_API or http://127.0.0.1:7070)')
  .option('--token <token>', 'API token (default $SHOAL_TOKEN); needed when the agent runs with --tokens')
  .option('--json', 'print JSON')
  .action(async (opts) => {
    const result = await apiClient(opts).post<{ checked: number; corrupt: string[] }>('/api/verify', {
      timeoutMs: 60 * 60_000,
    })
    print(Boolean(opts.json), result, () =>
      result.corrupt.length === 0
        ? `verified ${result.checked} blob(s): all intact`
        : `verified ${result.checked} blob(s): ${result.corrupt.length} corrupt, removed and to be fetched again:\n${result.corrupt.join('\n')}`,
    )
    if (result.corrupt.length > 0) process.exitCode = 2
  })

program
  .command('rollout')
  .argument('<distribution>', 'the version to run, NAME@VERSION (or "status" to follow rollout ID)')
  .argument('[id]', 'with "status": the rollout to show')
  .description('move the cluster (or --nodes) to a distribution version (docs/manager.md)')
  .addOption(
    new Option('--strategy <strategy>', 'how nodes move')
      .choices(['all-at-once', 'rolling', 'canary'])
      .default('all-at-once'),
  )
  .option('--max-unavailable <n>', 'rolling: nodes out of rotation at once, N or P% (default 1)')
  .option('--canary <percent>', 'canary: share of nodes updated first (default 20)', positiveInt)
  .addOption(
    new Option('--approve <mode>', 'canary: continue after approval, or after a clean window').choices([
      'manual',
      'auto',
    ]),
  )
  .option('--nodes <ids>', 'only these nodes (comma-separated ids)')
  .option(
    '--min-ready <seconds>',
    'a node must stay ready this long before the next one goes (default 1)',
    Number,
  )
  .option('--failure-threshold <n>', 'failed nodes that stop the rollout (default 1)', positiveInt)
  .option('--no-auto-rollback', 'when the threshold is crossed, stop but do not send failed nodes back')
  .option('--watch', 'with "status": follow until the rollout ends')
  .option(
    '--wait',
    'block until it is done; exit non-zero if it fails, is rolled back, aborted or superseded',
  )
  .option('--timeout <seconds>', 'with --wait: give up after this long (default 600)', positiveInt, 600)
  .option('--api <url>', 'agent API (default $SHOAL_API or http://127.0.0.1:7070)')
  .option('--token <token>', 'API token (default $SHOAL_TOKEN); needed when the agent runs with --tokens')
  .option('--json', 'print JSON')
  .action(async (distribution: string, id: string | undefined, opts) => {
    const { rollout, follow, formatRollouts, parseUnavailable } = await import('./rollout.js')
    const client = apiClient(opts)
    const wait = { timeoutMs: (opts.timeout as number) * 1000, progress: !opts.json }
    if (distribution === 'status') {
      if (id == null) throw new ShoalError('ERR_BAD_REQUEST', 'usage: shoal rollout status ID [--watch]', 400)
      const view = opts.watch
        ? await follow(client, id, wait)
        : await client.get<RolloutView>(`/api/rollouts/${id}`)
      print(Boolean(opts.json), view, () => formatRollouts([view]))
      return
    }
    const body = {
      distribution,
      strategy: opts.strategy,
      ...(opts.maxUnavailable == null ? {} : parseUnavailable(opts.maxUnavailable)),
      ...(opts.canary == null ? {} : { canaryPercent: opts.canary }),
      ...(opts.approve == null ? {} : { approve: opts.approve }),
      ...(opts.nodes == null ? {} : { nodes: String(opts.nodes).split(',').filter(Boolean) }),
      ...(opts.minReady == null ? {} : { minReadyMs: Math.round(Number(opts.minReady) * 1000) }),
      ...(opts.failureThreshold == null ? {} : { failureThreshold: opts.failureThreshold }),
      autoRollback: opts.autoRollback !== false,
    }
    const view = await rollout(client, body, opts.wait ? wait : null)
    print(Boolean(opts.json), view, () => formatRollouts([view]))
  })

program
  .command('rollback')
  .argument('<name>', 'distribution name')
  .description('roll back to an earlier version the nodes still hold (default: the previous one)')
  .option('--to <version>', 'the version to go back to')
  .addOption(
    new Option('--strategy <strategy>', 'how nodes move')
      .choices(['all-at-once', 'rolling', 'canary'])
      .default('all-at-once'),
  )
  .option('--max-unavailable <n>', 'rolling: nodes out of rotation at once, N or P%')
  .option('--wait', 'block until it is done; exit non-zero otherwise')
  .option('--timeout <seconds>', 'with --wait: give up after this long (default 600)', positiveInt, 600)
  .option('--api <url>', 'agent API (default $SHOAL_API or http://127.0.0.1:7070)')
  .option('--token <token>', 'API token (default $SHOAL_TOKEN); needed when the agent runs with --tokens')
  .option('--json', 'print JSON')
  .action(async (name: string, opts) => {
    const { rollback, formatRollouts, parseUnavailable } = await import('./rollout.js')
    const body = {
      name,
      ...(opts.to == null ? {} : { to: opts.to }),
      strategy: opts.strategy,
      ...(opts.maxUnavailable == null ? {} : parseUnavailable(opts.maxUnavailable)),
    }
    const wait = { timeoutMs: (opts.timeout as number) * 1000, progress: !opts.json }
    const view = await rollback(apiClient(opts), body, opts.wait ? wait : null)
    print(Boolean(opts.json), view, () => formatRollouts([view]))
  })

for (const [op, what] of [
  ['approve', 'let a canary rollout waiting for approval continue'],
  ['pause', 'let no further node start switching (those switching finish)'],
  ['resume', 'continue a paused rollout'],
  ['abort', 'stop a rollout and send every node it switched back'],
] as const) {
  program
    .command(op)
    .argument('<id>', 'rollout id (shoal rollouts)')
    .description(what)
    .option('--api <url>', 'agent API (default $SHOAL_API or http://127.0.0.1:7070)')
    .option('--token <token>', 'API token (default $SHOAL_TOKEN); needed when the agent runs with --tokens')
    .option('--json', 'print JSON')
    .action(async (id: string, opts) => {
      const { formatRollouts } = await import('./rollout.js')
      const view = await apiClient(opts).post<RolloutView>(`/api/rollouts/${id}/${op}`)
      print(Boolean(opts.json), view, () => formatRollouts([view]))
    })
}

program
  .command('rollouts')
  .description('rollouts, newest first, with their progress')
  .option('--api <url>', 'agent API (default $SHOAL_API or http://127.0.0.1:7070)')
  .option('--token <token>', 'API token (default $SHOAL_TOKEN); needed when the agent runs with --tokens')
  .option('--json', 'print JSON')
  .action(async (opts) => {
    const { formatRollouts } = await import('./rollout.js')
    const list = await apiClient(opts).get<RolloutView[]>('/api/rollouts')
    print(Boolean(opts.json), list, () => formatRollouts(list))
  })

program
  .command('components')
  .description("the addressed agent's components: version, state, endpoint, restarts")
  .option('--api <url>', 'agent API (default $SHOAL_API or http://127.0.0.1:7070)')
  .option('--token <token>', 'API token (default $SHOAL_TOKEN); needed when the agent runs with --tokens')
  .option('--json', 'print JSON')
  .action(async (opts) => {
    const status = await apiClient(opts).get<RuntimeStatus>('/api/components')
    print(Boolean(opts.json), status, () => formatComponents(status))
  })

program
  .command('logs')
  .argument('<component>', 'component name')
  .description("a component's output on the addressed agent")
  .option('-f, --follow', 'keep printing new output')
  .option('-n, --lines <n>', 'lines of history', (v) => Number(v), 100)
  .option('--api <url>', 'agent API (default $SHOAL_API or http://127.0.0.1:7070)')
  .option('--token <token>', 'API token (default $SHOAL_TOKEN); needed when the agent runs with --tokens')
  .action(async (component: string, opts) => {
    const { printLogs } = await import('./logs.js')
    await printLogs(apiClient(opts), component, opts.lines as number, Boolean(opts.follow))
  })

program
  .command('lb')
  .description(
    'run a load balancer that routes HTTP to the ready components of a service (docs/loadbalancer.md)',
  )
  .requiredOption('--cluster <name>', 'cluster to join as an observer (role lb)')
  .option('--listen <host:port>', 'HTTP address to serve on', '127.0.0.1:8080')
  .option('--service <name>', 'service whose components receive the traffic', 'web')
  .addOption(
    new Option('--balance <strategy>', 'how a backend is picked')
      .choices(['round-robin', 'least-outstanding'])
      .default('round-robin'),
  )
  .option('--bootstrap <multiaddr>', 'peer to join through, repeatable', collect)
  .option('--secret-file <file>', 'cluster secret (libp2p private network key)')
  .option('--data <dir>', 'data folder (identity); default ~/.shoal/<cluster>-lb')
  .option(
    '--p2p-listen <multiaddr>',
    'libp2p listen address, repeatable (default /ip4/0.0.0.0/tcp/0)',
    collect,
  )
  .option('--no-mdns', 'do not discover peers by mDNS on the local network')
  .option(
    '--haproxy-socket <path>',
    "drive this HAProxy's runtime API (stats socket, level admin) instead of proxying",
  )
  .option('--haproxy-backend <name>', 'the HAProxy backend whose servers Shoal manages')
  .addOption(new Option('--preset <preset>', 'timer preset').choices(['lan', 'cloud', 'test']).default('lan'))
  .addOption(
    new Option('--log-level <level>', 'log level')
      .choices(['debug', 'info', 'warn', 'error'])
      .default('info'),
  )
  .action(async (opts) => {
    const { runLoadBalancer } = await import('./lb.js')
    await runLoadBalancer({
      cluster: opts.cluster,
      listen: opts.listen,
      service: opts.service,
      strategy: opts.balance,
      bootstrap: opts.bootstrap,
      secretFile: opts.secretFile ?? null,
      dataDir: opts.data,
      p2pListen: opts.p2pListen,
      mdns: opts.mdns,
      haproxySocket: opts.haproxySocket,
      haproxyBackend: opts.haproxyBackend,
      preset: opts.preset as TimerPreset,
      logLevel: opts.logLevel as LogLevel,
    })
  })

program
  .command('demo')
  .description('run a local cluster of agents on this machine until Ctrl+C')
  .option('--nodes <n>', 'number of agents', positiveInt, 3)
  .option('--data <dir>', 'data folder for the demo agents', '.shoal/demo')
  .option('--json', 'print one JSON line once the cluster is up')
  .action(async (opts) => {
    const { runDemo } = await import('./demo.js')
    await runDemo({ nodes: opts.nodes, data: opts.data, json: Boolean(opts.json) })
  })

program.parseAsync(process.argv).catch((err: unknown) => {
  if (err instanceof ShoalError) {
    console.error(`error: ${err.message} [${err.code}]`)
  } else {
    console.error(`error: ${err instanceof Error ? err.message : String(err)}`)
  }
  process.exit(1)
})
