import { spawnSync } from 'node:child_process'
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import {
  DescribeInstancesCommand,
  type DescribeInstancesCommandInput,
  EC2Client,
  EC2ServiceException,
  type Instance,
  RunInstancesCommand,
  TerminateInstancesCommand,
} from '@aws-sdk/client-ec2'
import { mockClient } from 'aws-sdk-client-mock'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { CLOUD_INIT_PATHS, renderCloudInit } from '../../src/providers/cloud-init.js'
import { discoverPeers, Ec2Provider, type Ec2ProviderInit } from '../../src/providers/ec2.js'
import type { NodeSpec } from '../../src/providers/provider.js'
import { ShoalError } from '../../src/shared/errors.js'
import { createLogger } from '../../src/shared/logger.js'
import { VERSION } from '../../src/shared/version.js'
import { skipReason } from '../helpers/skip.js'

/** Debian's cloud-init checks the rendered user-data (.ci/run installs it). */
const noCloudInit = skipReason(
  import.meta.url,
  'cloud-init schema check of the rendered user-data',
  spawnSync('cloud-init', ['--version']).error == null
    ? null
    : 'cloud-init is not installed (apt-get install cloud-init)',
)

const ec2 = mockClient(EC2Client)
const log = createLogger({ level: 'silent' })
const SECRET =
  '/key/swarm/psk/1.0.0/\n/base16/\n0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\n'
const TRUST = '-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAtrustedkey\n-----END PUBLIC KEY-----\n'
const RELEASE_URL = `http://10.0.1.5:7070/releases/1893456000.${'ab'.repeat(32)}.${'A'.repeat(43)}`
const BOOTSTRAP = [
  '/ip4/10.0.1.10/tcp/7946/p2p/12D3KooWExampleA',
  '/ip4/10.0.1.11/tcp/7946/p2p/12D3KooWExampleB',
]

let dir: string
let spec: NodeSpec

const init: Ec2ProviderInit = {
  region: 'eu-west-1',
  imageId: 'ami-0123456789abcdef0',
  instanceType: 't3.small',
  subnetId: 'subnet-0aa',
  securityGroupIds: ['sg-0bb'],
  keyName: 'ops',
  iamInstanceProfile: 'shoal-node',
  shoalVersion: '0.1.0',
  // The override; the default (the launcher's own release) is test/integration/ec2-release.test.ts.
  npmPackage: 'shoal@0.1.0',
  launchedBy: '12D3KooWLauncher',
  pollMs: 2,
  startTimeoutMs: 2_000,
}

function provider(overrides: Partial<Ec2ProviderInit> = {}): Ec2Provider {
  return new Ec2Provider({ ...init, ...overrides }, log, new EC2Client({ region: 'eu-west-1' }))
}

function describeAnswer(instance: Instance) {
  return { Reservations: [{ Instances: [instance] }] }
}

function notFound(): EC2ServiceException {
  return new EC2ServiceException({
    name: 'InvalidInstanceID.NotFound',
    $fault: 'client',
    $metadata: {},
    message: "The instance ID 'i-0new' does not exist",
  })
}

async function expectProviderError(promise: Promise<unknown>, pattern: RegExp): Promise<ShoalError> {
  const err = await promise.then(
    () => null,
    (e: unknown) => e,
  )
  expect(err).toBeInstanceOf(ShoalError)
  expect((err as ShoalError).code).toBe('ERR_PROVIDER')
  expect((err as ShoalError).message).toMatch(pattern)
  return err as ShoalError
}

/** The content of a literal-block (`content: |`) file in a rendered cloud-config. */
function literalFile(doc: string, path: string): string {
  const lines = doc.split('\n')
  const start = lines.indexOf(`  - path: ${path}`)
  expect(start).toBeGreaterThanOrEqual(0)
  const contentAt = lines.indexOf('    content: |', start)
  const out: string[] = []
  for (const line of lines.slice(contentAt + 1)) {
    if (line !== '' && !line.startsWith('      ')) break
    out.push(line.slice(6))
  }
  return `${out.join('\n').replace(/\n+$/, '')}\n`
}

/** The content of a base64 (`encoding: b64`) file in a rendered cloud-config. */
function b64File(doc: string, path: string): string {
  const lines = doc.split('\n')
  const start = lines.indexOf(`  - path: ${path}`)
  expect(start).toBeGreaterThanOrEqual(0)
  const content = lines.slice(start, start + 6).find((l) => l.startsWith('    content: '))!
  return Buffer.from(content.slice('    content: '.length), 'base64').toString('utf8')
}

function userDataOfLastLaunch(): string {
  const call = ec2.commandCalls(RunInstancesCommand).at(-1)!
  return Buffer.from(call.args[0].input.UserData!, 'base64').toString('utf8')
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'shoal-ec2-'))
  await writeFile(join(dir, 'cluster.secret'), SECRET, { mode: 0o600 })
  await writeFile(join(dir, 'publisher.pub'), TRUST)
  spec = {
    cluster: 'prod-eu',
    tokensFile: null,
    secretFile: join(dir, 'cluster.secret'),
    trust: [join(dir, 'publisher.pub')],
    bootstrap: BOOTSTRAP,
    roles: ['web'],
    tags: { zone: 'eu-west-1a', team: "o'brien & co" },
    preset: 'cloud',
    mdns: true,
  }
})

afterAll(async () => {
  await rm(dir, { recursive: true, force: true })
})

beforeEach(() => {
  ec2.reset()
})

describe('ec2 provider: launch', () => {
  it('runs one tagged instance with a cloud-init user-data and polls it through pending to running', async () => {
    ec2
      .on(RunInstancesCommand)
      .resolves({ Instances: [{ InstanceId: 'i-0new', State: { Name: 'pending' } }] })
    ec2
      .on(DescribeInstancesCommand)
      .rejectsOnce(notFound()) // EC2 is eventually consistent right after RunInstances
      .resolvesOnce(describeAnswer({ InstanceId: 'i-0new', State: { Name: 'pending' } }))
      .resolvesOnce(describeAnswer({ InstanceId: 'i-0new', State: { Name: 'pending' } }))
      .resolves(
        describeAnswer({ InstanceId: 'i-0new', State: { Name: 'running' }, PrivateIpAddress: '10.0.1.23' }),
      )
    const steps: string[] = []
    const node = await provider().launch(spec, (step) => steps.push(step))

    expect(node).toMatchObject({
      provider: 'ec2',
      handle: 'i-0new',
      id: null,
      api: null,
      state: 'running',
      launchedBy: '12D3KooWLauncher',
      error: null,
      roles: ['web'],
      tags: spec.tags,
    })
    expect(steps).toEqual([
      'requested instance i-0new (t3.small, ami-0123456789abcdef0)',
      'instance i-0new is pending',
      'instance i-0new is running at 10.0.1.23',
    ])
    expect(ec2.commandCalls(DescribeInstancesCommand, { InstanceIds: ['i-0new'] })).toHaveLength(4)

    const calls = ec2.commandCalls(RunInstancesCommand)
    expect(calls).toHaveLength(1)
    const input = calls[0]!.args[0].input
    expect(input).toMatchObject({
      ImageId: 'ami-0123456789abcdef0',
      InstanceType: 't3.small',
      MinCount: 1,
      MaxCount: 1,
      SubnetId: 'subnet-0aa',
      SecurityGroupIds: ['sg-0bb'],
      KeyName: 'ops',
      IamInstanceProfile: { Name: 'shoal-node' },
      MetadataOptions: { HttpTokens: 'required' },
    })
    expect(input.ClientToken).toMatch(/^[0-9a-f-]{36}$/)
    expect(input.TagSpecifications).toEqual([
      {
        ResourceType: 'instance',
        Tags: [
          { Key: 'Name', Value: 'shoal-prod-eu' },
          { Key: 'shoal:cluster', Value: 'prod-eu' },
          { Key: 'shoal:launched-by', Value: '12D3KooWLauncher' },
          { Key: 'shoal:tag:zone', Value: 'eu-west-1a' },
          { Key: 'shoal:tag:team', Value: "o'brien & co" },
        ],
      },
    ])

    const doc = userDataOfLastLaunch()
    expect(doc.startsWith('#cloud-config\n')).toBe(true)
    expect(doc).toContain('prod-eu')
    expect(b64File(doc, CLOUD_INIT_PATHS.secret)).toBe(SECRET)
    expect(b64File(doc, `${CLOUD_INIT_PATHS.trustDir}/0.pub`)).toBe(TRUST)
    expect(doc).toMatch(/path: \/etc\/shoal\/cluster\.secret\n {4}owner: root:root\n {4}permissions: '0600'/)
    const run = literalFile(doc, CLOUD_INIT_PATHS.runAgent)
    expect(run).toContain("--cluster 'prod-eu'")
    expect(run).toContain('--provider ec2')
    // It also finds running members by the cluster tag, in the launcher's region.
    expect(run).toContain("--discover-ec2 'eu-west-1'")
    expect(run).toContain('--handle "$instance_id"')
    expect(run).toContain('--no-mdns')
    expect(run).toContain(`--secret-file ${CLOUD_INIT_PATHS.secret}`)
    expect(run).toContain(`--trust ${CLOUD_INIT_PATHS.trustDir}/0.pub`)
    for (const addr of BOOTSTRAP) expect(run).toContain(`--bootstrap '${addr}'`)
    expect(run).toContain("--role 'web'")
    expect(run).toContain('169.254.169.254')
    expect(literalFile(doc, CLOUD_INIT_PATHS.install)).toContain(
      "npm install -g --no-fund --no-audit 'shoal@0.1.0'",
    )
    expect(literalFile(doc, CLOUD_INIT_PATHS.unit)).toContain(`ExecStart=${CLOUD_INIT_PATHS.runAgent}`)
    expect(doc.trimEnd().endsWith(`runcmd:\n  - [bash, ${CLOUD_INIT_PATHS.install}]`)).toBe(true)
  })

  it('fails with ERR_PROVIDER when the instance is terminated while launching', async () => {
    ec2.on(RunInstancesCommand).resolves({ Instances: [{ InstanceId: 'i-0doomed' }] })
    ec2
      .on(DescribeInstancesCommand)
      .resolvesOnce(describeAnswer({ InstanceId: 'i-0doomed', State: { Name: 'pending' } }))
      .resolves(
        describeAnswer({
          InstanceId: 'i-0doomed',
          State: { Name: 'terminated' },
          StateReason: {
            Code: 'Server.InternalError',
            Message: 'Server.InternalError: Internal error on launch',
          },
        }),
      )
    const steps: string[] = []
    await expectProviderError(
      provider().launch(spec, (step) => steps.push(step)),
      /ec2 provider: instance i-0doomed is terminated instead of running \(Server\.InternalError: Internal error on launch\)/,
    )
    expect(steps).toContain('instance i-0doomed is pending')
  })

  it('maps AWS errors to ERR_PROVIDER naming them', async () => {
    ec2.on(RunInstancesCommand).rejects(
      new EC2ServiceException({
        name: 'InsufficientInstanceCapacity',
        $fault: 'server',
        $metadata: { httpStatusCode: 500 },
        message:
          'We currently do not have sufficient t3.small capacity in the Availability Zone you requested.',
      }),
    )
    const err = await expectProviderError(
      provider().launch(spec, () => {}),
      /RunInstances failed: InsufficientInstanceCapacity: We currently do not have sufficient t3\.small capacity/,
    )
    expect((err as unknown as { awsError: string }).awsError).toBe('InsufficientInstanceCapacity')
    expect(ec2.commandCalls(DescribeInstancesCommand)).toHaveLength(0)

    ec2.reset()
    ec2.on(RunInstancesCommand).resolves({ Instances: [{ InstanceId: 'i-0x' }] })
    ec2.on(DescribeInstancesCommand).rejects(
      new EC2ServiceException({
        name: 'UnauthorizedOperation',
        $fault: 'client',
        $metadata: { httpStatusCode: 403 },
        message: 'You are not authorized to perform this operation.',
      }),
    )
    await expectProviderError(
      provider().launch(spec, () => {}),
      /DescribeInstances failed: UnauthorizedOperation: You are not authorized/,
    )
  })

  it('gives up after startTimeoutMs and asks EC2 to terminate the instance', async () => {
    ec2.on(RunInstancesCommand).resolves({ Instances: [{ InstanceId: 'i-0slow' }] })
    ec2
      .on(DescribeInstancesCommand)
      .resolves(describeAnswer({ InstanceId: 'i-0slow', State: { Name: 'pending' } }))
    ec2.on(TerminateInstancesCommand).resolves({})
    await expectProviderError(
      provider({ startTimeoutMs: 30 }).launch(spec, () => {}),
      /i-0slow was not running after 30 ms \(last state: pending\)/,
    )
    expect(ec2.commandCalls(TerminateInstancesCommand, { InstanceIds: ['i-0slow'] })).toHaveLength(1)
  })

  it('fails with ERR_PROVIDER before calling EC2 when the secret cannot be read', async () => {
    await expectProviderError(
      provider().launch({ ...spec, secretFile: join(dir, 'missing.secret') }, () => {}),
      /cannot read the cluster secret .*missing\.secret/,
    )
    expect(ec2.commandCalls(RunInstancesCommand)).toHaveLength(0)
  })

  it('leaves out the secret, and MetadataOptions for custom endpoints, when not wanted', async () => {
    ec2.on(RunInstancesCommand).resolves({ Instances: [{ InstanceId: 'i-0open' }] })
    ec2
      .on(DescribeInstancesCommand)
      .resolves(describeAnswer({ InstanceId: 'i-0open', State: { Name: 'running' } }))
    await provider({
      endpoint: 'https://ec2.private.example:8788',
      iamInstanceProfile: 'arn:aws:iam::1:x',
    }).launch({ ...spec, secretFile: null, trust: [] }, () => {})
    const input = ec2.commandCalls(RunInstancesCommand)[0]!.args[0].input
    expect(input.MetadataOptions).toBeUndefined()
    expect(input.IamInstanceProfile).toEqual({ Arn: 'arn:aws:iam::1:x' })
    const doc = userDataOfLastLaunch()
    expect(doc).not.toContain(`path: ${CLOUD_INIT_PATHS.secret}`)
    expect(doc).not.toContain('--secret-file')
    expect(doc).not.toContain('--trust')
  })
})

describe('ec2 provider: where instances get Shoal', () => {
  it('fails with ERR_PROVIDER before calling EC2 when it has neither a release URL nor an npm package', async () => {
    await expectProviderError(
      provider({ npmPackage: undefined }).launch(spec, () => {}),
      /set releaseUrl .* or npmPackage/,
    )
    expect(ec2.commandCalls(RunInstancesCommand)).toHaveLength(0)
  })

  it('installs npmPackage when it is set, checking for shoalVersion (default: the launcher version)', async () => {
    ec2.on(RunInstancesCommand).resolves({ Instances: [{ InstanceId: 'i-0npm' }] })
    ec2
      .on(DescribeInstancesCommand)
      .resolves(describeAnswer({ InstanceId: 'i-0npm', State: { Name: 'running' } }))
    await provider({ npmPackage: 'https://mirror.example/shoal-0.1.0.tgz', shoalVersion: undefined }).launch(
      spec,
      () => {},
    )
    const doc = userDataOfLastLaunch()
    const install = literalFile(doc, CLOUD_INIT_PATHS.install)
    expect(install).toContain("npm install -g --no-fund --no-audit 'https://mirror.example/shoal-0.1.0.tgz'")
    expect(install).toContain(`!= '${VERSION}' ]`)
    expect(doc).not.toContain(CLOUD_INIT_PATHS.fetchRelease)
  })
})

describe('ec2 provider: terminate', () => {
  it('terminates the instance by its id and polls until it shuts down', async () => {
    ec2.on(TerminateInstancesCommand).resolves({ TerminatingInstances: [{ InstanceId: 'i-0old' }] })
    ec2
      .on(DescribeInstancesCommand)
      .resolvesOnce(describeAnswer({ InstanceId: 'i-0old', State: { Name: 'running' } }))
      .resolves(describeAnswer({ InstanceId: 'i-0old', State: { Name: 'shutting-down' } }))
    const steps: string[] = []
    await provider().terminate({ handle: 'i-0old' }, (step) => steps.push(step))
    const calls = ec2.commandCalls(TerminateInstancesCommand)
    expect(calls).toHaveLength(1)
    expect(calls[0]!.args[0].input).toEqual({ InstanceIds: ['i-0old'] })
    expect(ec2.commandCalls(DescribeInstancesCommand)).toHaveLength(2)
    expect(steps).toEqual(['asked EC2 to terminate instance i-0old', 'instance i-0old is shutting-down'])
  })

  it('is done at once when EC2 answers shutting-down, or the instance is gone', async () => {
    ec2
      .on(TerminateInstancesCommand)
      .resolvesOnce({
        TerminatingInstances: [{ InstanceId: 'i-0a', CurrentState: { Name: 'shutting-down' } }],
      })
      .rejectsOnce(notFound())
    await provider().terminate({ handle: 'i-0a' }, () => {})
    const steps: string[] = []
    await provider().terminate({ handle: 'i-0b' }, (step) => steps.push(step))
    expect(steps).toEqual(['instance i-0b is gone'])
    expect(ec2.commandCalls(DescribeInstancesCommand)).toHaveLength(0)
  })

  it('maps a refused termination to ERR_PROVIDER', async () => {
    ec2.on(TerminateInstancesCommand).rejects(
      new EC2ServiceException({
        name: 'OperationNotPermitted',
        $fault: 'client',
        $metadata: {},
        message:
          "The instance 'i-0p' may not be terminated. Modify its 'disableApiTermination' instance attribute",
      }),
    )
    await expectProviderError(
      provider().terminate({ handle: 'i-0p' }, () => {}),
      /TerminateInstances failed: OperationNotPermitted/,
    )
  })
})

describe('ec2 discovery', () => {
  const fleet: Instance[] = [
    instance('i-1', 'prod-eu', 'running', '10.0.1.1'),
    instance('i-2', 'prod-eu', 'running', '10.0.1.2'),
    instance('i-3', 'prod-eu', 'stopped', '10.0.1.3'),
    instance('i-4', 'staging', 'running', '10.0.2.4'),
    instance('i-5', 'prod-eu', 'pending', '10.0.1.5'),
    instance('i-6', 'prod-eu', 'running', '10.0.1.6'),
  ]

  function instance(id: string, cluster: string, state: string, ip: string): Instance {
    return {
      InstanceId: id,
      PrivateIpAddress: ip,
      State: { Name: state as 'running' },
      Tags: [{ Key: 'shoal:cluster', Value: cluster }],
    }
  }

  /** DescribeInstances as EC2 does it: filters by tag and state, two instances a page. */
  function fakeDescribe(input: DescribeInstancesCommandInput) {
    const matches = fleet.filter((i) =>
      (input.Filters ?? []).every((f) => {
        if (f.Name === 'instance-state-name') return f.Values!.includes(i.State!.Name!)
        if (f.Name?.startsWith('tag:')) {
          const key = f.Name.slice(4)
          return i.Tags!.some((t) => t.Key === key && f.Values!.includes(t.Value!))
        }
        throw new Error(`unexpected filter ${f.Name}`)
      }),
    )
    const from = Number(input.NextToken ?? 0)
    const page = matches.slice(from, from + 2)
    return {
      Reservations: page.map((i) => ({ Instances: [i] })),
      ...(from + 2 < matches.length ? { NextToken: String(from + 2) } : {}),
    }
  }

  it('builds multiaddrs from the private IPs of running instances tagged with the cluster', async () => {
    ec2.on(DescribeInstancesCommand).callsFake(fakeDescribe)
    const client = new EC2Client({ region: 'eu-west-1' })
    expect(await discoverPeers(client, 'prod-eu')).toEqual([
      '/ip4/10.0.1.1/tcp/7946',
      '/ip4/10.0.1.2/tcp/7946',
      '/ip4/10.0.1.6/tcp/7946',
    ])
    expect(await discoverPeers(client, 'staging')).toEqual(['/ip4/10.0.2.4/tcp/7946'])
    expect(await discoverPeers(client, 'nobody')).toEqual([])
    const first = ec2.commandCalls(DescribeInstancesCommand)[0]!.args[0].input
    expect(first.Filters).toEqual([
      { Name: 'tag:shoal:cluster', Values: ['prod-eu'] },
      { Name: 'instance-state-name', Values: ['running'] },
    ])
    // Two pages for prod-eu, then one each.
    expect(ec2.commandCalls(DescribeInstancesCommand)).toHaveLength(4)
    expect(await provider().discover('staging')).toEqual(['/ip4/10.0.2.4/tcp/7946'])
  })

  it('maps a refused DescribeInstances to ERR_PROVIDER', async () => {
    ec2.on(DescribeInstancesCommand).rejects(
      new EC2ServiceException({
        name: 'UnauthorizedOperation',
        $fault: 'client',
        $metadata: {},
        message: 'You are not authorized to perform this operation.',
      }),
    )
    await expectProviderError(
      discoverPeers(new EC2Client({ region: 'eu-west-1' }), 'prod-eu'),
      /UnauthorizedOperation/,
    )
  })
})

describe('cloud-init scripts', () => {
  const doc = renderCloudInit({
    cluster: 'prod-eu',
    shoalVersion: '0.1.0',
    install: { release: { url: RELEASE_URL, sha256: 'ab'.repeat(32), name: 'shoal-0.1.0.tgz' } },
    secret: SECRET,
    trust: [TRUST, TRUST],
    bootstrap: BOOTSTRAP,
    roles: ['web', 'api'],
    tags: { team: "o'brien & co", note: 'a $HOME `x` "y"' },
    preset: 'cloud',
  })

  it.skipIf(noCloudInit != null)(
    'pass `cloud-init schema`, with the launcher release and with an npm package',
    async () => {
      const withNpm = renderCloudInit({
        cluster: 'prod-eu',
        shoalVersion: '0.1.0',
        install: { npmPackage: 'shoal@0.1.0' },
        secret: null,
        trust: [],
        bootstrap: [],
        roles: [],
        tags: {},
        preset: 'lan',
        discover: { region: 'eu-west-1', endpoint: 'https://ec2.private.example:8788' },
      })
      const tmp = await mkdtemp(join(tmpdir(), 'shoal-cloud-init-'))
      try {
        for (const [name, content] of [
          ['release.yaml', doc],
          ['npm.yaml', withNpm],
        ] as const) {
          await writeFile(join(tmp, name), content)
          // Debian's cloud-init package (.ci/run installs it).
          const res = spawnSync('cloud-init', ['schema', '--config-file', join(tmp, name)], {
            encoding: 'utf8',
          })
          expect(res.error).toBeUndefined()
          expect(`${res.stdout}${res.stderr}`).toContain('Valid cloud-config')
          expect(res.status).toBe(0)
        }
      } finally {
        await rm(tmp, { recursive: true, force: true })
      }
    },
  )

  it('are valid bash', async () => {
    for (const path of [CLOUD_INIT_PATHS.install, CLOUD_INIT_PATHS.runAgent, CLOUD_INIT_PATHS.fetchRelease]) {
      const res = spawnSync('bash', ['-n'], { input: literalFile(doc, path), encoding: 'utf8' })
      expect(res.stderr).toBe('')
      expect(res.status).toBe(0)
    }
  })

  it('start the agent with the instance id from IMDSv2 and every argument intact', async () => {
    const bin = await mkdtemp(join(tmpdir(), 'shoal-ec2-bin-'))
    try {
      // A metadata service that wants a token, and a `shoal` that records its arguments.
      await writeFile(
        join(bin, 'curl'),
        `#!/bin/bash
args="$*"
if [[ "$args" == *"-X PUT"*"/latest/api/token"* ]]; then echo -n tok123; exit 0; fi
if [[ "$args" == *"X-aws-ec2-metadata-token: tok123"*"/latest/meta-data/instance-id"* ]]; then echo -n i-0abc123; exit 0; fi
exit 22
`,
      )
      await writeFile(join(bin, 'shoal'), `#!/bin/bash\nprintf '%s\\n' "$@" > "${join(bin, 'args')}"\n`)
      await chmod(join(bin, 'curl'), 0o755)
      await chmod(join(bin, 'shoal'), 0o755)
      await writeFile(join(bin, 'run-agent.sh'), literalFile(doc, CLOUD_INIT_PATHS.runAgent))
      const res = spawnSync('bash', [join(bin, 'run-agent.sh')], {
        encoding: 'utf8',
        env: { PATH: `${bin}:/usr/bin:/bin` },
      })
      expect(res.stderr).toBe('')
      expect(res.status).toBe(0)
      const args = (await readFile(join(bin, 'args'), 'utf8')).trimEnd().split('\n')
      expect(args).toEqual([
        'agent',
        '--cluster',
        'prod-eu',
        '--data',
        CLOUD_INIT_PATHS.data,
        '--listen',
        '/ip4/0.0.0.0/tcp/7946',
        '--data-listen',
        '0.0.0.0:7947',
        '--preset',
        'cloud',
        '--provider',
        'ec2',
        '--handle',
        'i-0abc123',
        '--no-mdns',
        '--secret-file',
        CLOUD_INIT_PATHS.secret,
        '--trust',
        `${CLOUD_INIT_PATHS.trustDir}/0.pub`,
        '--trust',
        `${CLOUD_INIT_PATHS.trustDir}/1.pub`,
        '--bootstrap',
        BOOTSTRAP[0],
        '--bootstrap',
        BOOTSTRAP[1],
        '--role',
        'web',
        '--role',
        'api',
        '--tag',
        "team=o'brien & co",
        '--tag',
        'note=a $HOME `x` "y"',
      ])
    } finally {
      await rm(bin, { recursive: true, force: true })
    }
  })
})
