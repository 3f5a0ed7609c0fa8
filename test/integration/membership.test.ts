import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { afterEach, describe, expect, it } from 'vitest'
import type { Agent } from '../../src/bootstrap/index.js'
import { writeNewSecret } from '../../src/bootstrap/index.js'
import { type Claim, membershipProtocols } from '../../src/membership/index.js'
import type { MemberTable } from '../../src/membership/member-table.js'
import { decodeGossip } from '../../src/membership/messages.js'
import { TestCluster } from '../helpers/cluster.js'
import { waitFor } from '../helpers/wait.js'

describe('membership between real agents', () => {
  const clusters: TestCluster[] = []
  const cluster = (name?: string) => {
    const c = new TestCluster(name)
    clusters.push(c)
    return c
  }
  afterEach(async () => {
    await Promise.all(clusters.map((c) => c.cleanup()))
    clusters.length = 0
  })

  it('five nodes converge on one view with everyone alive', async () => {
    const c = cluster()
    const agents = await c.startMany(5)
    await c.waitForConvergence(agents)
    for (const agent of agents) {
      expect(agent.api.members().map((m) => m.state)).toEqual(['alive', 'alive', 'alive', 'alive', 'alive'])
    }
  })

  it('a node stopped without leaving is suspected, then declared dead everywhere', async () => {
    const c = cluster()
    const agents = await c.startMany(4)
    await c.waitForConvergence(agents)
    const [victim, ...rest] = [agents[3]!, ...agents.slice(0, 3)]
    const suspectedBy = new Set<string>()
    for (const agent of rest) {
      agent.membership.events.on('member:suspect', (m) => {
        if (m.id === victim.id) suspectedBy.add(agent.id)
      })
    }
    await victim.stop({ leave: false })
    await c.waitForState(rest, victim.id, 'dead')
    expect(suspectedBy.size).toBeGreaterThan(0)
  })

  it('an agent from before the delta sync (full-view sync only) and a new one still sync, both ways', async () => {
    const c = cluster()
    const old = await c.start()
    // What an agent of the previous release speaks: the full-view sync protocol only, as server
    // and as client (its delta protocol renamed to one nobody serves).
    const { deltaSync, sync } = membershipProtocols(c.cluster)
    await old.node.unhandle(deltaSync)
    ;(old.membership as unknown as { protocols: { deltaSync: string } }).protocols.deltaSync =
      `${deltaSync}-unknown`
    expect(old.node.getProtocols()).toContain(sync)
    // The joiner learns the old agent only by a sync: it joins through it, and nobody else is there.
    const joiner = await c.start()
    await c.waitForConvergence([old, joiner])
    expect(joiner.membership.stats().syncs).toBeGreaterThan(0)
    await joiner.membership.updateMetadata({ tags: { sync: 'both ways' } })
    await waitFor(
      'the old agent to see the joiner’s new tags',
      () => JSON.stringify(old.membership.get(joiner.id)?.meta.tags) === '{"sync":"both ways"}',
    )
  })

  it('a graceful leave shows as left everywhere', async () => {
    const c = cluster()
    const agents = await c.startMany(4)
    await c.waitForConvergence(agents)
    const leaver = agents[2]!
    await leaver.stop({ leave: true })
    const rest = agents.filter((a) => a !== leaver)
    await c.waitForState(rest, leaver.id, 'left', 5_000)
  })

  it('a restarted node keeps its id and rejoins with a higher incarnation', async () => {
    const c = cluster()
    const agents = await c.startMany(3)
    await c.waitForConvergence(agents)
    const node = agents[1]!
    const { dataDir } = node.config
    const before = node.membership.self.incarnation
    await node.stop({ leave: true })
    await c.waitForState([agents[0]!, agents[2]!], node.id, 'left')
    const again = await c.start({ dataDir })
    expect(again.id).toBe(node.id)
    await c.waitForState([agents[0]!, agents[2]!], node.id, 'alive')
    expect(agents[0]!.membership.get(node.id)!.incarnation).toBeGreaterThan(before)
  })

  it('a node without the cluster secret cannot connect at all', async () => {
    const c = cluster()
    const dir = await c.dataDir()
    const secret = join(dir, 'cluster.secret')
    const wrong = join(dir, 'other.secret')
    await writeNewSecret(secret)
    await writeNewSecret(wrong)
    const agents = await c.startMany(3, { secretFile: secret })
    await c.waitForConvergence(agents)
    const intruder = await c.start({ secretFile: wrong })
    const noSecret = await c.start({ secretFile: null })
    // With the wrong key the handshake never completes (pnet garbles it): bound the wait.
    const target = agents[0]!.node.getMultiaddrs()[0]!
    await expect(intruder.node.dial(target, { signal: AbortSignal.timeout(2_000) })).rejects.toThrow()
    await expect(noSecret.node.dial(target, { signal: AbortSignal.timeout(2_000) })).rejects.toThrow()
    // Give the join loops several rounds to try.
    await new Promise((resolve) => setTimeout(resolve, 1_000))
    for (const agent of agents) {
      expect(agent.api.members().map((m) => m.id)).not.toContain(intruder.id)
      expect(agent.api.members().map((m) => m.id)).not.toContain(noSecret.id)
      expect(agent.node.getConnections(intruder.node.peerId)).toHaveLength(0)
    }
    expect(intruder.api.members()).toHaveLength(1)
  })

  it('refuses a secret file that is not a cluster secret', async () => {
    const c = cluster()
    const file = join(await c.dataDir(), 'bad.secret')
    await writeFile(file, 'hunter2\n')
    await expect(c.start({ secretFile: file })).rejects.toMatchObject({ code: 'ERR_SECRET_FILE' })
  })

  it('two clusters on the same bootstrap peers stay separate', async () => {
    const blue = cluster('blue')
    const green = cluster('green')
    const blueSeed = await blue.start()
    const greenSeed = await green.start({ bootstrap: [blueSeed.membership.self.addrs[0]!] })
    // One shared bootstrap list holding nodes of both clusters.
    const shared = [blueSeed.membership.self.addrs[0]!, greenSeed.membership.self.addrs[0]!]
    const blues = [blueSeed, await blue.start({ bootstrap: shared }), await blue.start({ bootstrap: shared })]
    const greens = [
      greenSeed,
      await green.start({ bootstrap: shared }),
      await green.start({ bootstrap: shared }),
    ]
    await blue.waitForConvergence(blues)
    await green.waitForConvergence(greens)
    // Blue and green agents are connected (they dialled each other's seeds) but never mix views.
    expect(greenSeed.node.getConnections(blueSeed.node.peerId).length).toBeGreaterThan(0)
    await new Promise((resolve) => setTimeout(resolve, 500))
    for (const agent of blues) expect(agent.api.members()).toHaveLength(3)
    for (const agent of greens) expect(agent.api.members()).toHaveLength(3)
    await blue.waitForConvergence(blues)
    await green.waitForConvergence(greens)
  })

  it('metadata a node sets about itself reaches every member', async () => {
    const c = cluster()
    const agents = await c.startMany(4)
    await c.waitForConvergence(agents)
    await agents[1]!.membership.setMetadata({ roles: ['web'], ready: false })
    // `ready` reaches the watchers only; a node that does not watch fetches it for its API, as a request does.
    await waitFor('metadata everywhere', async () => {
      for (const a of agents) await a.api.freshDetails()
      return agents.every((a) => {
        const view = a.api.members().find((m) => m.id === agents[1]!.id)
        return view?.ready === false && view.roles[0] === 'web'
      })
    })
  })

  it('per-node details go to the watchers only; a node that does not watch fetches them; no one can send another’s', async () => {
    const c = cluster()
    const agents = await c.startMany(4)
    await c.waitForConvergence(agents)
    // Three voters watch (the manager's), the fourth agent does not.
    await waitFor(
      'three watchers and one that does not watch',
      () => agents.filter((a) => a.membership.watching).length === 3,
      { timeout: 30_000 },
    )
    const other = agents.find((a) => !a.membership.watching)!
    const watchers = agents.filter((a) => a.membership.watching)
    const gossiped: Claim[] = []
    other.node.services.pubsub.addEventListener('message', (evt) => {
      try {
        gossiped.push(...decodeGossip(evt.detail.data).claims)
      } catch {}
    })
    const writer = watchers[0]!
    await writer.membership.updateMetadata({ ready: false, tags: { marker: '1' } })
    await waitFor('every watcher to hold the writer’s details', () =>
      watchers.every((w) => w.membership.get(writer.id)?.meta.ready === false),
    )
    await waitFor(
      'the view key to reach the node that does not watch',
      () => JSON.stringify(other.membership.get(writer.id)?.meta.tags) === '{"marker":"1"}',
    )
    // The change may reach it by a sync rather than gossip on a loaded machine: change
    // the view key until a gossiped record of the writer's has been seen.
    const fromWriter = (claim: Claim) =>
      claim.id === writer.id && (claim.kind === 'patch' || claim.kind === 'alive')
    for (let marker = 2; marker <= 6 && !gossiped.some(fromWriter); marker++) {
      await writer.membership.updateMetadata({ tags: { marker: String(marker) } })
      await waitFor(
        `marker ${marker} to reach the node that does not watch`,
        () => JSON.stringify(other.membership.get(writer.id)?.meta.tags) === `{"marker":"${marker}"}`,
      )
    }
    // Its record carries no detail: `ready` came by no gossip.
    const carried = (claim: Claim) =>
      claim.id === writer.id &&
      ((claim.kind === 'alive' && 'ready' in claim.meta) || (claim.kind === 'patch' && 'ready' in claim.set))
    expect(gossiped.some(fromWriter)).toBe(true)
    expect(gossiped.some(carried)).toBe(false)
    await other.membership.refreshDetails()
    expect(other.membership.get(writer.id)?.meta.ready).toBe(false)
    // A member that sends a watcher details in another's name is not believed.
    const ask = (
      other.membership as unknown as {
        ask(id: string, request: unknown, timeoutMs: number): Promise<unknown>
      }
    ).ask.bind(other.membership)
    const forged = { id: writer.id, inc: 1e9, dv: 1, meta: { ready: true } }
    await ask(watchers[1]!.id, { t: 'detail', detail: forged }, 5000)
    expect(watchers[1]!.membership.get(writer.id)?.meta.ready).toBe(false)
    // The writer's next change reaches the node that does not watch at its next fetch.
    await writer.membership.updateMetadata({ ready: true })
    await waitFor('the node that does not watch to fetch the change', async () => {
      await other.membership.refreshDetails()
      return other.membership.get(writer.id)?.meta.ready === true
    })
  })

  it('metadata changes travel as patches; a member that missed the one patched fetches the whole record', async () => {
    const c = cluster()
    const agents = await c.startMany(3)
    await c.waitForConvergence(agents)
    const [a, b] = agents as [Agent, Agent]
    const patches: Claim[] = []
    b.node.services.pubsub.addEventListener('message', (evt) => {
      try {
        for (const claim of decodeGossip(evt.detail.data).claims)
          if (claim.kind === 'patch') patches.push(claim)
      } catch {}
    })
    await a.membership.updateMetadata({ roles: ['patched'] })
    await waitFor('b to see a’s new roles, by a patch', () => {
      const roles = b.membership.get(a.id)?.meta.roles
      return Array.isArray(roles) && roles[0] === 'patched' && patches.some((p) => p.id === a.id)
    })
    expect(patches.find((p) => p.id === a.id)).toMatchObject({ kind: 'patch', set: { roles: ['patched'] } })
    // a changes its record without publishing it; b then hears a patch of an incarnation it
    // never held, and can only learn the change by asking a for its whole record.
    const table = (a.membership as unknown as { view(): MemberTable }).view()
    const quiet = { ...table.selfRecord, incarnation: table.selfRecord.incarnation + 1 }
    table.setSelf({ ...quiet, meta: { ...quiet.meta, roles: ['quiet'] } })
    const internals = b.membership as unknown as { applyAll(claims: Claim[]): Claim[] }
    internals.applyAll([
      {
        kind: 'patch',
        id: a.id,
        incarnation: quiet.incarnation + 5,
        base: quiet.incarnation + 4,
        set: {},
        drop: [],
      },
    ])
    await waitFor('b to hold a’s unpublished record', () => {
      const seen = b.membership.get(a.id)
      return seen?.incarnation === quiet.incarnation && JSON.stringify(seen.meta.roles) === '["quiet"]'
    })
  })

  it('news learned by a direct exchange is published twice, the repeat with other bytes (gossip refuses a message it has seen)', async () => {
    const c = cluster()
    const agents = await c.startMany(2)
    await c.waitForConvergence(agents)
    const [a, b] = agents as [Agent, Agent]
    const stranger = peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString()
    const heard: Array<{ r?: number }> = []
    b.node.services.pubsub.addEventListener('message', (evt) => {
      try {
        const message = decodeGossip(evt.detail.data) as { claims: Claim[]; r?: number }
        if (message.claims.some((claim) => claim.kind === 'left' && claim.id === stranger))
          heard.push(message)
      } catch {}
    })
    const internals = a.membership as unknown as { broadcast(claims: Claim[], repeat: boolean): void }
    // A claim about a member nobody knows: b drops it, but hears each publication.
    internals.broadcast([{ kind: 'left', id: stranger, incarnation: 1 }], true)
    await waitFor('both publications at b', () => heard.length === 2, { timeout: 10_000 })
    expect(heard.map((m) => m.r ?? 0)).toEqual([0, 1])
  })

  it('a second agent on the same data folder is refused with a clear error', async () => {
    const c = cluster()
    const first = await c.start()
    await expect(c.start({ dataDir: first.config.dataDir })).rejects.toMatchObject({
      code: 'ERR_DATA_DIR_IN_USE',
    })
  })
})
