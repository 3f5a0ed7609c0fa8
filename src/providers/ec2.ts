import { randomUUID } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { setTimeout as sleep } from 'node:timers/promises'
import {
  DescribeInstancesCommand,
  type DescribeInstancesCommandInput,
  type DescribeInstancesCommandOutput,
  EC2Client,
  type Instance,
  RunInstancesCommand,
  type RunInstancesCommandInput,
  type Tag,
  TerminateInstancesCommand,
} from '@aws-sdk/client-ec2'
import type { Logger } from '../shared/index.js'
import { CLUSTER_NAME, messageOf, VERSION } from '../shared/index.js'
import { type CloudInitInput, renderCloudInit, SHOAL_PORT } from './cloud-init.js'
import { Ec2ProviderError, ProviderError } from './errors.js'
import { type LaunchedNode, launchedNode, type NodeSpec, type Provider } from './provider.js'
import type { Releases } from './releases.js'

export interface Ec2ProviderInit {
  region: string
  /** API endpoint of an EC2-compatible private cloud; default: AWS's endpoint for the region. */
  endpoint?: string
  /** AMI the instances boot (any Linux with cloud-init, systemd, bash and curl). */
  imageId: string
  instanceType: string
  subnetId?: string
  /** Must let members reach each other on tcp/7946 (libp2p) and tcp/7947 (artifact bytes: the data plane). */
  securityGroupIds?: string[]
  keyName?: string
  /** Instance profile name, or its ARN. */
  iamInstanceProfile?: string
  /**
   * Version of Shoal the instances run: with the launcher's release (the default)
   * it is the launcher's own version; with `npmPackage`, the version that package
   * installs (what `shoal --version` prints; default: the launcher's version).
   */
  shoalVersion?: string
  /** What `npm install -g` installs instead of the launcher's own release (a mirror's package, a tarball URL). */
  npmPackage?: string
  /**
   * Base URL of this agent's API as the new instances reach it (`http://10.0.1.5:7070`):
   * they download the launcher's release from `<releaseUrl>/releases/<token>`.
   * Needed unless `npmPackage` is set.
   */
  releaseUrl?: string
  /** The launcher's release and the URLs it signs (see Releases); needed with `releaseUrl`. */
  releases?: Releases
  /**
   * Ask EC2 to allow only IMDSv2 (token) metadata requests, which keeps the user-data
   * (it holds the cluster secret) out of reach of SSRF. Default: on for AWS, off
   * with a custom endpoint (private clouds may not know the MetadataOptions parameter).
   */
  requireImdsV2?: boolean
  /** Who launches (this agent's peer id), recorded with each node and as a tag. */
  launchedBy: string
  /** ms between DescribeInstances polls. */
  pollMs: number
  /** ms an instance gets to reach `running` (and, on terminate, `shutting-down`). */
  startTimeoutMs: number
}

/** Tag keys on instances the provider launches. */
export const CLUSTER_TAG = 'shoal:cluster'
export const LAUNCHED_BY_TAG = 'shoal:launched-by'
export const TAG_PREFIX = 'shoal:tag:'

/** EC2 takes at most 16 KB of user-data (before base64). */
const MAX_USER_DATA = 16 * 1024

/**
 * Nodes as EC2 instances (or instances of an EC2-compatible cloud): RunInstances
 * with a cloud-init user-data that installs Node.js and Shoal and starts the agent
 * (src/providers/cloud-init.ts, docs/cloud-init.md), tagged with the cluster name;
 * the handle is the instance id. Any agent with EC2 credentials can terminate a
 * node another agent launched: the handle is all it needs.
 */
export class Ec2Provider implements Provider {
  readonly name = 'ec2'
  private readonly client: EC2Client
  /** What the agent's API serves at `/releases/<token>` (through NodeOperations.release). */
  readonly releases: Releases | undefined

  constructor(
    private readonly init: Ec2ProviderInit,
    private readonly log: Logger,
    client?: EC2Client,
  ) {
    this.releases = init.releases
    this.client =
      client ??
      new EC2Client({ region: init.region, ...(init.endpoint == null ? {} : { endpoint: init.endpoint }) })
  }

  async launch(spec: NodeSpec, progress: (step: string) => void): Promise<LaunchedNode> {
    if (!CLUSTER_NAME.test(spec.cluster)) {
      throw new ProviderError(this.name, `cluster name "${spec.cluster}" is not valid`)
    }
    const install = await this.installSource(progress)
    const userData = renderCloudInit({
      cluster: spec.cluster,
      ...install,
      secret: spec.secretFile == null ? null : await this.readLocal(spec.secretFile, 'the cluster secret'),
      trust: await Promise.all(spec.trust.map((file) => this.readLocal(file, 'a trusted key'))),
      bootstrap: spec.bootstrap,
      roles: spec.roles,
      tags: spec.tags,
      preset: spec.preset,
      // New instances also find running members by tag: the launcher's own addresses may be unreachable from the cloud network.
      discover: {
        region: this.init.region,
        ...(this.init.endpoint == null ? {} : { endpoint: this.init.endpoint }),
      },
    })
    if (Buffer.byteLength(userData) > MAX_USER_DATA) {
      throw new ProviderError(
        this.name,
        `the cloud-init user-data is ${Buffer.byteLength(userData)} bytes; EC2 takes at most ${MAX_USER_DATA}`,
      )
    }
    const tags: Tag[] = [
      { Key: 'Name', Value: `shoal-${spec.cluster}` },
      { Key: CLUSTER_TAG, Value: spec.cluster },
      { Key: LAUNCHED_BY_TAG, Value: this.init.launchedBy },
      ...Object.entries(spec.tags).map(([k, v]) => ({ Key: `${TAG_PREFIX}${k}`, Value: v })),
    ]
    const requireImdsV2 = this.init.requireImdsV2 ?? this.init.endpoint == null
    const input: RunInstancesCommandInput = {
      ImageId: this.init.imageId,
      InstanceType: this.init.instanceType as RunInstancesCommandInput['InstanceType'],
      MinCount: 1,
      MaxCount: 1,
      // Makes the SDK's own retries of this request idempotent: one instance, not two.
      ClientToken: randomUUID(),
      UserData: Buffer.from(userData, 'utf8').toString('base64'),
      TagSpecifications: [{ ResourceType: 'instance', Tags: tags }],
      ...(this.init.subnetId == null ? {} : { SubnetId: this.init.subnetId }),
      ...(this.init.securityGroupIds == null ? {} : { SecurityGroupIds: this.init.securityGroupIds }),
      ...(this.init.keyName == null ? {} : { KeyName: this.init.keyName }),
      ...(this.init.iamInstanceProfile == null
        ? {}
        : {
            IamInstanceProfile: this.init.iamInstanceProfile.startsWith('arn:')
              ? { Arn: this.init.iamInstanceProfile }
              : { Name: this.init.iamInstanceProfile },
          }),
      ...(requireImdsV2 ? { MetadataOptions: { HttpTokens: 'required', HttpEndpoint: 'enabled' } } : {}),
    }
    let instanceId: string
    try {
      const out = await this.client.send(new RunInstancesCommand(input))
      const id = out.Instances?.[0]?.InstanceId
      if (id == null) throw new ProviderError(this.name, 'RunInstances answered without an instance id')
      instanceId = id
    } catch (err) {
      throw awsError('RunInstances', err)
    }
    progress(`requested instance ${instanceId} (${this.init.instanceType}, ${this.init.imageId})`)
    this.log.info('requested an ec2 instance', { instanceId, cluster: spec.cluster })

    const deadline = Date.now() + this.init.startTimeoutMs
    let last: string | null = null
    for (;;) {
      const instance = await this.describe(instanceId)
      const state = instance?.State?.Name ?? null
      if (state != null && state !== last) {
        last = state
        if (state !== 'running') progress(`instance ${instanceId} is ${state}`)
      }
      if (state === 'running') {
        const ip = instance?.PrivateIpAddress ?? 'an unknown address'
        progress(`instance ${instanceId} is running at ${ip}`)
        this.log.info('an ec2 instance is running', { instanceId, ip })
        return launchedNode(this.name, this.init.launchedBy, spec, {
          handle: instanceId,
          id: null,
          api: null,
        })
      }
      if (
        state === 'shutting-down' ||
        state === 'terminated' ||
        state === 'stopping' ||
        state === 'stopped'
      ) {
        const reason = instance?.StateReason?.Message ?? instance?.StateTransitionReason ?? 'no reason given'
        throw new ProviderError(
          this.name,
          `instance ${instanceId} is ${state} instead of running (${reason})`,
        )
      }
      if (Date.now() > deadline) {
        // Do not leave a paid-for instance behind that no record will point to as running.
        await this.client.send(new TerminateInstancesCommand({ InstanceIds: [instanceId] })).catch((err) => {
          this.log.warn('could not terminate an instance that did not start in time', {
            instanceId,
            error: String(err),
          })
        })
        throw new ProviderError(
          this.name,
          `instance ${instanceId} was not running after ${this.init.startTimeoutMs} ms (last state: ${last ?? 'unknown'}); asked EC2 to terminate it`,
        )
      }
      await sleep(this.init.pollMs)
    }
  }

  async terminate(node: Pick<LaunchedNode, 'handle'>, progress: (step: string) => void): Promise<void> {
    const instanceId = node.handle
    let state: string | null = null
    try {
      const out = await this.client.send(new TerminateInstancesCommand({ InstanceIds: [instanceId] }))
      state = out.TerminatingInstances?.[0]?.CurrentState?.Name ?? null
    } catch (err) {
      if (errorName(err) === 'InvalidInstanceID.NotFound') {
        progress(`instance ${instanceId} is gone`)
        return
      }
      throw awsError('TerminateInstances', err)
    }
    progress(`asked EC2 to terminate instance ${instanceId}`)
    const deadline = Date.now() + this.init.startTimeoutMs
    for (;;) {
      if (state === 'shutting-down' || state === 'terminated') {
        progress(`instance ${instanceId} is ${state}`)
        this.log.info('terminated an ec2 instance', { instanceId, state })
        return
      }
      if (Date.now() > deadline) {
        throw new ProviderError(
          this.name,
          `instance ${instanceId} was not shutting down after ${this.init.startTimeoutMs} ms (state: ${state ?? 'unknown'})`,
        )
      }
      await sleep(this.init.pollMs)
      const instance = await this.describe(instanceId, true)
      // Terminated instances drop out of DescribeInstances after a while.
      state = instance === undefined ? 'terminated' : (instance?.State?.Name ?? null)
    }
  }

  /** Peers of a cluster among this account's running instances (see `discoverPeers`). */
  discover(cluster: string): Promise<string[]> {
    return discoverPeers(this.client, cluster)
  }

  /**
   * One instance by id; null while EC2 does not know it yet (its API is eventually
   * consistent right after RunInstances), or undefined for "not found" if `goneIsUndefined`.
   */
  private async describe(instanceId: string, goneIsUndefined = false): Promise<Instance | null | undefined> {
    try {
      const out = await this.client.send(new DescribeInstancesCommand({ InstanceIds: [instanceId] }))
      return (
        out.Reservations?.flatMap((r) => r.Instances ?? []).find((i) => i.InstanceId === instanceId) ?? null
      )
    } catch (err) {
      if (errorName(err) === 'InvalidInstanceID.NotFound') return goneIsUndefined ? undefined : null
      throw awsError('DescribeInstances', err)
    }
  }

  /** Where the instance gets Shoal: an npm package if configured, else this agent's own release. */
  private async installSource(
    progress: (step: string) => void,
  ): Promise<Pick<CloudInitInput, 'shoalVersion' | 'install'>> {
    const { npmPackage, releaseUrl, releases } = this.init
    if (npmPackage != null)
      return { shoalVersion: this.init.shoalVersion ?? VERSION, install: { npmPackage } }
    if (releaseUrl == null || releases == null)
      throw new ProviderError(
        this.name,
        "new instances cannot install Shoal: set releaseUrl (this agent's API as instances reach it) or npmPackage in the providers file",
      )
    const offer = await releases.offer(releaseUrl).catch((err: unknown) => {
      throw new ProviderError(this.name, messageOf(err))
    })
    if (this.init.shoalVersion != null && this.init.shoalVersion !== offer.version)
      throw new ProviderError(
        this.name,
        `shoalVersion is ${this.init.shoalVersion} but this agent runs Shoal ${offer.version}, the release it serves; remove shoalVersion, or set npmPackage to install another version`,
      )
    progress(
      `instances download Shoal ${offer.version} (sha256 ${offer.sha256.slice(0, 12)}…) from ${releaseUrl} until ${new Date(offer.expiresAt).toISOString()}`,
    )
    return {
      shoalVersion: offer.version,
      install: { release: { url: offer.url, sha256: offer.sha256, name: offer.name } },
    }
  }

  private async readLocal(file: string, what: string): Promise<string> {
    try {
      return await readFile(file, 'utf8')
    } catch (err) {
      throw new ProviderError(this.name, `cannot read ${what} ${file}: ${(err as Error).message}`)
    }
  }
}

/**
 * A discovery source (like Consul's cloud auto-join): the running instances tagged
 * `shoal:cluster=<cluster>`, as libp2p multiaddrs of their private addresses on the
 * agent port. A cloud node can join through these without mDNS.
 */
export async function discoverPeers(
  client: EC2Client,
  cluster: string,
  port = SHOAL_PORT,
): Promise<string[]> {
  const addrs: string[] = []
  let nextToken: string | undefined
  do {
    const input: DescribeInstancesCommandInput = {
      Filters: [
        { Name: `tag:${CLUSTER_TAG}`, Values: [cluster] },
        { Name: 'instance-state-name', Values: ['running'] },
      ],
      ...(nextToken == null ? {} : { NextToken: nextToken }),
    }
    let out: DescribeInstancesCommandOutput
    try {
      out = await client.send(new DescribeInstancesCommand(input))
    } catch (err) {
      throw awsError('DescribeInstances', err)
    }
    for (const instance of out.Reservations?.flatMap((r) => r.Instances ?? []) ?? []) {
      const ip = instance.PrivateIpAddress
      if (ip == null || instance.State?.Name !== 'running') continue
      if (!instance.Tags?.some((t) => t.Key === CLUSTER_TAG && t.Value === cluster)) continue
      const addr = `/ip4/${ip}/tcp/${port}`
      if (!addrs.includes(addr)) addrs.push(addr)
    }
    nextToken = out.NextToken
  } while (nextToken != null && nextToken !== '')
  return addrs
}

function errorName(err: unknown): string | null {
  return err instanceof Error ? err.name : null
}

/** An EC2 API failure as a ProviderError naming the AWS error (UnauthorizedOperation, ...). */
function awsError(operation: string, err: unknown): ProviderError {
  if (err instanceof ProviderError) return err
  const name = errorName(err)
  const message = err instanceof Error ? err.message : String(err)
  return new Ec2ProviderError(name, `${operation} failed: ${name ?? 'Error'}: ${message}`)
}
