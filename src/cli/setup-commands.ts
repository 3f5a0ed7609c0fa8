import { type Command, Option } from 'commander'
import type { Agent } from '../bootstrap/index.js'
import {
  DEFAULT_PRESET,
  isLogLevel,
  type LogLevel,
  parseBytes,
  TIMER_PRESETS,
  type TimerPreset,
} from '../shared/index.js'
import { collect, examples, parseTags, positiveInt, print } from './command-options.js'
import { UsageError } from './errors.js'
import { handleStopSignals } from './stop-signals.js'

const presetOption = () =>
  new Option('--preset <preset>', 'timer preset (docs/configuration.md)')
    .choices([...TIMER_PRESETS])
    .default(DEFAULT_PRESET)
const logLevelOption = () =>
  new Option('--log-level <level>', 'log level').choices(['debug', 'info', 'warn', 'error']).default('info')

/** Setup: the processes (agent, load balancer, demo) and the secrets and keys they use. */
export function addSetupCommands(program: Command): void {
  program
    .command('agent')
    .summary('run an agent (one per machine)')
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
    .option(
      '--data-listen <host:port>',
      'where peers fetch artifact bytes from this node (TLS with the cluster secret); "off": libp2p only (default: the --listen host, any port)',
    )
    .option(
      '--upload-slots <n>',
      'peers served artifact chunks at once; others are told to ask elsewhere (default 4)',
      positiveInt,
    )
    .addOption(presetOption())
    .option('--voters <n>', 'largest Raft voter set the leader keeps, 3 or 5 (default 5)', positiveInt)
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
    .addOption(logLevelOption())
    .option('--role <role>', 'a role this node announces (copies keep it), repeatable', collect)
    .option('--tag <key=value>', 'a tag this node announces (copies keep it), repeatable', collect)
    .option('--providers <file>', 'JSON file configuring the static and ec2 providers (docs/providers.md)')
    .option(
      '--discover-ec2 <region>',
      'at start, join EC2 instances tagged shoal:cluster=<cluster> (needs ec2:DescribeInstances)',
    )
    .option(
      '--discover-ec2-endpoint <url>',
      'with --discover-ec2: the API endpoint of an EC2-compatible cloud',
    )
    .addOption(
      new Option(
        '--osgi-framework <name>',
        'OSGi framework for osgi components (docs/osgi.md); default $SHOAL_OSGI_FRAMEWORK, else equinox',
      ).choices(['equinox', 'felix']),
    )
    .option('--provider <name>', 'set by a provider: the provider that launched this node')
    .option('--handle <handle>', "set by a provider: this node's handle there")
    .addHelpText(
      'after',
      `\nIt prints one JSON line once it runs: {"id","cluster","api","addrs"}.\n${examples(
        'shoal agent --cluster prod --secret-file cluster.secret --trust publisher.key.pub',
        'shoal agent --cluster prod --secret-file cluster.secret --bootstrap /ip4/10.0.0.5/tcp/7946',
        '# an API beyond loopback needs tokens (docs/operations.md)',
        'shoal agent --cluster prod --api 0.0.0.0:7070 --tokens /etc/shoal/tokens.json',
      )}`,
    )
    .action(async (opts) => {
      if (!isLogLevel(opts.logLevel)) throw new UsageError(`unknown log level ${opts.logLevel}`)
      // The agent stack (libp2p, level) loads only for commands that need it: client commands stay fast.
      const { Agent: AgentClass } = await import('../bootstrap/index.js')
      const artifacts = {
        ...(opts.maxArtifactSize == null ? {} : { maxArtifactBytes: parseBytes(opts.maxArtifactSize) }),
        ...(opts.retention == null ? {} : { retention: opts.retention as number }),
        ...(opts.uploadRate == null ? {} : { uploadRate: parseBytes(opts.uploadRate) }),
        ...(opts.downloadRate == null ? {} : { downloadRate: parseBytes(opts.downloadRate) }),
        ...(opts.uploadSlots == null ? {} : { uploadSlots: opts.uploadSlots as number }),
      }
      // Handled from the first moment: a signal during the start stops the agent once it has started.
      let starting: Promise<Agent> | undefined
      let started: Agent | undefined
      handleStopSignals({
        stop: async () => {
          const agent = await starting?.catch(() => undefined)
          await agent?.stop({ leave: true })
        },
        // Forced: no drain, no leave, but no component outlives the agent either.
        force: () => started?.killComponents(),
      })
      starting = AgentClass.start({
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
        dataListen: opts.dataListen ?? null,
        ...(opts.voters == null ? {} : { maxVoters: opts.voters as number }),
        preset: opts.preset as TimerPreset,
        logLevel: opts.logLevel as LogLevel,
        providersFile: opts.providers ?? null,
        ...(opts.osgiFramework == null ? {} : { osgiFramework: opts.osgiFramework as string }),
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
      const agent = await starting
      started = agent
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
    })

  program
    .command('lb')
    .summary("run a load balancer in front of a service's ready components")
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
    .option(
      '--admin <host:port>',
      'its own listener for /_shoal/lb (status), /_shoal/health and /_shoal/metrics; beyond loopback it needs --tokens',
      '127.0.0.1:9180',
    )
    .option(
      '--tokens <file>',
      "JSON file of tokens that may read the admin listener (the agent's --tokens format)",
    )
    .option(
      '--metrics <host:port>',
      'serve Prometheus metrics at GET /metrics on a listener of its own, without a token (docs/metrics.md)',
    )
    .addOption(presetOption())
    .addOption(logLevelOption())
    .addHelpText(
      'after',
      examples(
        'shoal lb --cluster prod --secret-file cluster.secret --listen 0.0.0.0:80 --service web',
        'curl http://127.0.0.1:9180/_shoal/lb   # its backends, on the admin listener',
        'shoal lb --cluster prod --haproxy-socket /run/haproxy/admin.sock --haproxy-backend web',
      ),
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
        admin: opts.admin as string,
        ...(opts.tokens == null ? {} : { tokensFile: opts.tokens as string }),
        ...(opts.metrics == null ? {} : { metrics: opts.metrics as string }),
        preset: opts.preset as TimerPreset,
        logLevel: opts.logLevel as LogLevel,
      })
    })

  program
    .command('demo')
    .summary('a local cluster with the sample app, until Ctrl+C')
    .description('run a local cluster of agents, a load balancer and the sample app until Ctrl+C')
    .option('--nodes <n>', 'number of agents', positiveInt, 3)
    .option('--data <dir>', 'data folder for the demo agents', '.shoal/demo')
    .option('--json', 'print one JSON line {"app","dashboard","apis","token"} once the cluster is up')
    .addHelpText('after', examples('shoal demo', 'shoal demo --nodes 5 --json'))
    .action(async (opts) => {
      const { runDemo } = await import('./demo.js')
      await runDemo({ nodes: opts.nodes, data: opts.data, json: Boolean(opts.json) })
    })

  const secret = program
    .command('secret')
    .description('cluster secrets: nodes without the secret cannot connect')
    .addHelpText('after', examples('shoal secret new cluster.secret'))
  secret
    .command('new')
    .argument('<file>', 'where to write the secret (mode 0600)')
    .description('write a new cluster secret; pass it to every agent with --secret-file')
    .option('--json', 'print {"file"}')
    .addHelpText('after', examples('shoal secret new cluster.secret'))
    .action(async (file: string, opts: { json?: boolean }) => {
      const { writeNewSecret } = await import('../bootstrap/index.js')
      await writeNewSecret(file)
      print(
        opts.json,
        { file },
        () => `wrote cluster secret to ${file}; give it to every agent with --secret-file ${file}`,
      )
    })

  const key = program
    .command('key')
    .description('publisher signing keys: agents run only what keys they --trust signed')
    .addHelpText('after', examples('shoal key new publisher.key'))
  key
    .command('new')
    .argument('<file>', 'private key file (mode 0600); the public key goes to FILE.pub')
    .description('write a new ed25519 signing key pair; agents trust FILE.pub with --trust')
    .option('--json', 'print {"id","file","publicFile"}')
    .addHelpText('after', examples('shoal key new publisher.key'))
    .action(async (file: string, opts: { json?: boolean }) => {
      const { writeNewKeyPair } = await import('../artifacts/index.js')
      const { id, publicFile } = await writeNewKeyPair(file)
      print(
        opts.json,
        { id, file, publicFile },
        () => `wrote signing key ${id} to ${file} and ${publicFile}; start agents with --trust ${publicFile}`,
      )
    })
}
