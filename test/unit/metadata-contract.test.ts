import { readFileSync } from 'node:fs'
import { afterEach, describe, expect, it } from 'vitest'
import type { MemberView } from '../../src/api/index.js'
import { MEMBER_METADATA } from '../../src/bootstrap/announcements.js'
import { resolveAgentConfig } from '../../src/bootstrap/config.js'
import { describeMembers } from '../../src/cli/views.js'
import { fitDrained, loadBalancerAnnouncement } from '../../src/loadbalancer/announcement.js'
import { drainConfirmed } from '../../src/loadbalancer/index.js'
import { isEligible } from '../../src/manager/election.js'
import { managerAnnouncement } from '../../src/manager/index.js'
import { nextVoterChange } from '../../src/manager/voter-policy.js'
import {
  type Claim,
  isObserver,
  MAX_METADATA_BYTES,
  type Member,
  type MemberMetadata,
  type MembershipEvents,
  MetadataContract,
  metadataBytes,
  OBSERVER_ROLES,
  rolesOf,
} from '../../src/membership/index.js'
import { MemberTable } from '../../src/membership/member-table.js'
import { runtimeAnnouncement } from '../../src/runtime/index.js'
import { type Logger, silentLogger, TypedEvents } from '../../src/shared/index.js'
import { presetTimers } from '../../src/shared/presets.js'

/**
 * The member-metadata contract: each subsystem declares its keys (schema and
 * byte budget) in its own announcement.ts; membership checks a peer's claim
 * against them once, when it applies it (a bad key is dropped, the member kept,
 * one log line), and this node's own writes before they go out (a clear error).
 */

const PEER = '12D3KooWC2G8Mq6Pj1u6CmunpwQVugXSDZEFCi38e5AJESCxKJAx'

/** Metadata an agent of the previous version announces, byte for byte as it wrote it. */
const AGENT_META = {
  provider: 'local',
  handle: '/tmp/shoal-nodes/node-1',
  roles: ['web'],
  tags: { zone: 'a' },
  distribution: 'educa@1.0',
  components: [
    {
      name: 'web',
      version: '1.0',
      state: 'ready',
      endpoint: 'http://10.0.0.5:40123',
      provides: ['web'],
      weight: 100,
    },
    {
      name: 'catalog',
      version: '1.0',
      instance: 1,
      state: 'failed',
      error: 'exited with code 1',
      endpoint: null,
      provides: ['catalog'],
      weight: 100,
    },
  ],
  runtime: { target: 'educa@1.0', phase: 'done', error: null },
  osgi: null,
  ready: false,
  dists: { 'educa@1.0': '0123456789abcdef' },
  fetching: [],
  manager: { term: 3 },
  cluster: { term: 3, seq: 12, manager: PEER },
}

/** A logger that keeps its warnings. */
function recorder(): Logger & { warnings: string[] } {
  const warnings: string[] = []
  const logger: Logger & { warnings: string[] } = {
    ...silentLogger,
    warnings,
    warn: (message) => warnings.push(message),
    child: () => logger,
  }
  return logger
}

const tables: MemberTable[] = []
afterEach(() => {
  for (const table of tables.splice(0)) table.clear()
})

/** A view holding only this node, checking claims against the agent's contract. */
function view(log: Logger = silentLogger): MemberTable {
  const table = new MemberTable(
    { id: 'self', addrs: [], incarnation: 1, state: 'alive', meta: {} },
    presetTimers('test').membership,
    new TypedEvents<MembershipEvents>(silentLogger),
    { declaredDead: () => {}, refute: () => {}, observersOf: () => [], stale: () => {} },
    log,
    MEMBER_METADATA,
  )
  tables.push(table)
  return table
}

const alive = (incarnation: number, meta: MemberMetadata): Claim => ({
  kind: 'alive',
  id: PEER,
  incarnation,
  addrs: [],
  meta,
})

/** A member as a view would hold it, metadata not checked by any membership (built by hand). */
const handMade = (meta: MemberMetadata, state: Member['state'] = 'alive'): Member => ({
  id: PEER,
  addrs: [],
  incarnation: 1,
  state,
  meta,
  self: false,
  since: 0,
})

describe('a claim from a peer', () => {
  it('keeps every key of a valid claim as it came, typed for readers', () => {
    const table = view()
    expect(table.apply(alive(1, AGENT_META))).toBe(true)
    const member = table.get(PEER)!
    expect(member.meta).toEqual(AGENT_META)
    const { components, distribution, ready } = runtimeAnnouncement.of(member)
    expect(components?.map((c) => [c.name, c.state, c.instance ?? 0])).toEqual([
      ['web', 'ready', 0],
      ['catalog', 'failed', 1],
    ])
    expect({ distribution, ready }).toEqual({ distribution: 'educa@1.0', ready: false })
    expect(managerAnnouncement.of(member)).toEqual({ manager: { term: 3 }, cluster: AGENT_META.cluster })
    expect(rolesOf(member)).toEqual(['web'])
  })

  it('drops a key over its budget and keeps the member and the other keys, with one log line', () => {
    const log = recorder()
    const table = view(log)
    const drained = Array.from({ length: 220 }, (_, i) => `${PEER}/web-${i}`)
    expect(metadataBytes(drained)).toBeGreaterThan(loadBalancerAnnouncement.budget('drained'))
    expect(metadataBytes(drained)).toBeLessThan(MAX_METADATA_BYTES)
    const meta = { roles: ['lb'], service: 'web', drained, url: 'http://10.0.0.9:8080' }
    table.apply(alive(1, meta))
    const member = table.get(PEER)!
    expect(member.state).toBe('alive')
    expect(member.meta).toEqual({ roles: ['lb'], service: 'web', url: 'http://10.0.0.9:8080' })
    expect(loadBalancerAnnouncement.of(member)).toEqual({ service: 'web', url: 'http://10.0.0.9:8080' })
    expect(log.warnings).toEqual([
      expect.stringMatching(/"drained" \(loadbalancer\) that is \d+ bytes, over its budget of 12288/),
    ])
    // The same bad key in the member's next claims costs no further line.
    table.apply(alive(2, meta))
    table.apply(alive(3, { ...meta, drained: [...drained, 'more'] }))
    expect(table.get(PEER)!.incarnation).toBe(3)
    expect(log.warnings).toHaveLength(1)
  })

  it('drops a key of the wrong type and keeps the rest', () => {
    const log = recorder()
    const table = view(log)
    const bad = {
      ...AGENT_META,
      components: [{ name: 'web', version: '1.0', state: 'sleeping', endpoint: 'http://10.0.0.5:1' }],
      manager: { term: 2.5 },
      roles: 'lb',
    }
    table.apply(alive(1, bad))
    const member = table.get(PEER)!
    expect(Object.keys(member.meta).sort()).toEqual(
      Object.keys(AGENT_META)
        .filter((key) => !['components', 'manager', 'roles'].includes(key))
        .sort(),
    )
    expect(runtimeAnnouncement.of(member).components).toBeUndefined()
    expect(runtimeAnnouncement.of(member).distribution).toBe('educa@1.0')
    expect(managerAnnouncement.of(member).manager).toBeUndefined()
    // A role list that is not a list is no role at all: not an observer.
    expect(rolesOf(member)).toEqual([])
    expect(log.warnings.map((w) => /key "(\w+)"/.exec(w)?.[1]).sort()).toEqual([
      'components',
      'manager',
      'roles',
    ])
    expect(log.warnings.find((w) => w.includes('"components"'))).toMatch(/at 0\.state/)
  })

  it("keeps a key no subsystem declares (a newer agent's) as it came", () => {
    const table = view()
    table.apply(alive(1, { ...AGENT_META, future: { anything: [1, 2, 3] } }))
    expect(table.get(PEER)!.meta.future).toEqual({ anything: [1, 2, 3] })
  })

  it('checks metadata no membership checked (a record built by hand) where it is read', () => {
    const member = handMade({
      components: [{ name: 'web' }],
      distribution: 'educa@1.0',
      manager: { term: -1 },
    })
    expect(runtimeAnnouncement.of(member)).toEqual({ distribution: 'educa@1.0' })
    expect(managerAnnouncement.of(member)).toEqual({})
  })
})

describe("this node's own metadata", () => {
  it('is accepted when every key is declared, valid and within budget', () => {
    expect(MEMBER_METADATA.checkOwn(AGENT_META)).toEqual(AGENT_META)
  })

  it('refuses an undeclared key, naming it', () => {
    expect(() => MEMBER_METADATA.checkOwn({ colour: 'blue' })).toThrow(
      expect.objectContaining({ code: 'ERR_METADATA_INVALID', key: 'colour' }),
    )
  })

  it('refuses a value of the wrong type, naming the key and its owner', () => {
    expect(() => MEMBER_METADATA.checkOwn({ ready: 'yes' })).toThrow(
      expect.objectContaining({
        code: 'ERR_METADATA_INVALID',
        key: 'ready',
        message: expect.stringContaining('"ready" (runtime)'),
      }),
    )
  })

  it('refuses a key over its budget, saying by how much', () => {
    const roles = Array.from({ length: 16 }, (_, i) => `role-${i}-${'x'.repeat(40)}`)
    expect(() => MEMBER_METADATA.checkOwn({ roles })).toThrow(
      expect.objectContaining({
        code: 'ERR_METADATA_TOO_LARGE',
        key: 'roles',
        message: expect.stringMatching(/"roles" \(membership\) is \d+ bytes, over its budget of 512/),
      }),
    )
  })

  it('refuses a whole over the limit a member may announce', () => {
    const big = (prefix: string) => Array.from({ length: 150 }, (_, i) => `${prefix}-${i}-${'x'.repeat(60)}`)
    const meta = { drained: big('a'), fetching: [], components: [], dists: {}, service: 'web' }
    // Each key within its budget, the sum of an agent's and a load balancer's keys not.
    expect(() => MEMBER_METADATA.checkOwn({ ...meta, osgi: null })).not.toThrow()
    const agentAndLb = {
      ...meta,
      components: Array.from({ length: 60 }, (_, i) => ({
        name: `component-${i}`,
        version: '1.0',
        state: 'ready',
        endpoint: 'http://10.0.0.5:40123',
        provides: [`component-${i}`],
        weight: 100,
      })),
    }
    expect(() => MEMBER_METADATA.checkOwn(agentAndLb)).toThrow(
      expect.objectContaining({ code: 'ERR_METADATA_TOO_LARGE', key: null }),
    )
  })
})

describe('the contract', () => {
  it('refuses a key declared twice', () => {
    expect(() => MetadataContract.of([runtimeAnnouncement, runtimeAnnouncement])).toThrow(
      expect.objectContaining({ code: 'ERR_CONFIG', message: expect.stringContaining('declared by both') }),
    )
  })

  it("keeps an agent's keys, all at their budgets, within what a member may announce", () => {
    const agentOwners = new Set(['membership', 'providers', 'runtime', 'artifacts', 'manager'])
    const agentKeys = MEMBER_METADATA.list().filter((key) => agentOwners.has(key.owner))
    const lbKeys = MEMBER_METADATA.list().filter((key) => ['membership', 'loadbalancer'].includes(key.owner))
    // Each key's JSON at its budget, plus its name, quotes, colon and comma, plus the braces.
    const worst = (keys: typeof agentKeys) =>
      keys.reduce((sum, key) => sum + key.maxBytes + key.name.length + 4, 1)
    expect(worst(agentKeys)).toBeLessThanOrEqual(MAX_METADATA_BYTES)
    expect(worst(lbKeys)).toBeLessThanOrEqual(MAX_METADATA_BYTES)
  })

  it('is the table docs/architecture.md shows, key by key with owner and budget', () => {
    const doc = readFileSync(new URL('../../docs/architecture.md', import.meta.url), 'utf8')
    const rows = new Map(
      [...doc.matchAll(/^\| `([\w-]+)` \| (\w+) \| ([\d,]+) \| (view|watchers) \|/gm)].map((m) => [
        m[1]!,
        { owner: m[2]!, maxBytes: Number(m[3]!.replace(/,/g, '')), reach: m[4]! },
      ]),
    )
    const declared = MEMBER_METADATA.list().map((key) => [
      key.name,
      { owner: key.owner, maxBytes: key.maxBytes, reach: key.reach ?? 'view' },
    ])
    expect([...rows.entries()]).toEqual(declared)
  })
})

describe('roles', () => {
  const member = (id: string, roles?: string[], state: Member['state'] = 'alive'): Member => ({
    ...handMade(roles == null ? {} : { roles }, state),
    id,
  })

  it('make a member with an observer role (lb, observer) an observer; any other role does not', () => {
    expect(isObserver(member('a', ['lb']))).toBe(true)
    expect(isObserver(member('a', ['observer']))).toBe(true)
    expect(isObserver(member('a', ['web']))).toBe(false)
    expect(isObserver(member('a'))).toBe(false)
  })

  it('never make an observer a voter, whatever its id', () => {
    const members = [
      member('a', ['lb']),
      member('b', ['observer']),
      member('c', ['web']),
      member('d'),
      member('e'),
    ]
    expect(members.map(isEligible)).toEqual([false, false, true, true, true])
    const change = nextVoterChange({
      config: { voters: ['d'], learners: [] },
      self: 'd',
      commit: 1,
      match: {},
      members: members.map((m) => (m.id === 'd' ? { ...m, self: true } : m)),
      goneSince: new Map(),
      now: 0,
      removalMs: 1000,
      maxVoters: 5,
    })
    expect(change).toEqual({ op: 'add-learner', node: 'c' })
  })

  it("are the dashboard's observer roles too", () => {
    const app = readFileSync(new URL('../../dashboard/app.js', import.meta.url), 'utf8')
    const listed = /const OBSERVER_ROLES = (\[.*\])/.exec(app)?.[1]
    expect(JSON.parse(listed!.replaceAll("'", '"'))).toEqual(OBSERVER_ROLES)
  })

  it('do not count an observer as a node', () => {
    const views = [
      { id: 'a', state: 'alive', roles: ['web'] },
      { id: 'b', state: 'alive', roles: [] },
      { id: 'c', state: 'alive', roles: ['lb'] },
      { id: 'd', state: 'alive', roles: ['observer'] },
    ] as MemberView[]
    expect(describeMembers(views)).toBe('2 nodes alive of 2 · 1 load balancer')
  })

  it('an agent may not announce an observer role, nor roles and tags the contract refuses', () => {
    for (const role of ['lb', 'observer'])
      expect(() => resolveAgentConfig({ cluster: 'roles', node: { roles: ['web', role] } })).toThrow(
        expect.objectContaining({ code: 'ERR_CONFIG', message: expect.stringContaining(`--role ${role}`) }),
      )
    expect(resolveAgentConfig({ cluster: 'roles', node: { roles: ['web'] } }).node.roles).toEqual(['web'])
    // Roles and tags are announced: what the contract refuses is refused before anything starts.
    expect(() => resolveAgentConfig({ cluster: 'roles', node: { roles: ['x'.repeat(65)] } })).toThrow(
      expect.objectContaining({ code: 'ERR_CONFIG', message: expect.stringMatching(/^--role: .*"roles"/) }),
    )
    expect(() => resolveAgentConfig({ cluster: 'roles', node: { tags: { zone: 'x'.repeat(300) } } })).toThrow(
      expect.objectContaining({ code: 'ERR_CONFIG', message: expect.stringMatching(/^--tag: .*"tags"/) }),
    )
  })
})

describe('drain confirmations', () => {
  const lb = (id: string, service: string, drained: string[], state: Member['state'] = 'alive'): Member => ({
    ...handMade({ roles: ['lb'], service, drained }, state),
    id,
  })

  it('wait for every alive load balancer routing to the service, and only those', () => {
    const key = `${PEER}/web`
    const members = [
      lb('lb1', 'web', [key]),
      lb('lb2', 'web', []),
      lb('lb3', 'api', []),
      lb('lb4', 'web', [], 'dead'),
    ]
    expect(drainConfirmed(members, key, ['web'])).toBe(false)
    expect(
      drainConfirmed(
        members.filter((m) => m.id !== 'lb2'),
        key,
        ['web'],
      ),
    ).toBe(true)
    // A member with no lb role saying "drained" is no load balancer.
    expect(
      drainConfirmed([{ ...lb('x', 'web', []), meta: { service: 'web', drained: [] } }], key, ['web']),
    ).toBe(true)
  })

  it('list as many drained backends as fit the budget, the rest later', () => {
    const keys = Array.from({ length: 400 }, (_, i) => `${PEER}/web-${String(i).padStart(3, '0')}`)
    const { drained, left } = fitDrained(keys)
    expect(drained.length + left).toBe(400)
    expect(left).toBeGreaterThan(0)
    expect(metadataBytes(drained)).toBeLessThanOrEqual(loadBalancerAnnouncement.budget('drained'))
    expect(() => MEMBER_METADATA.checkOwn({ drained })).not.toThrow()
    expect(fitDrained(keys.slice(0, 3))).toEqual({ drained: keys.slice(0, 3), left: 0 })
  })
})
