/**
 * What must hold after an agent was killed and restarted, each as a check that
 * answers ok or says what is wrong: the store verifies, the node runs exactly
 * one version, no component process of the killed run is left, no rollout is
 * stuck, the cluster converges, and no half-written file is left behind.
 */
import { readdir } from 'node:fs/promises'
import { join } from 'node:path'
import type { MemberView } from '../../src/api/index.js'
import type { DistributionView } from '../../src/artifacts/index.js'
import type { ManagerStatus, RolloutView } from '../../src/manager/index.js'
import type { RuntimeStatus } from '../../src/runtime/index.js'
import { type ChaosCluster, type ChaosNode, getJson, markedProcesses, postJson } from './cluster.js'

export const CHECKS = ['store', 'version', 'orphans', 'rollout', 'converge', 'debris'] as const
export type CheckName = (typeof CHECKS)[number]

export interface CheckResult {
  ok: boolean
  detail: string
}

const ok = (detail = 'ok'): CheckResult => ({ ok: true, detail })
const bad = (detail: string): CheckResult => ({ ok: false, detail })

/** Rollout states that are over: never `running` for ever. */
const FINISHED = new Set(['done', 'failed', 'rolled-back', 'aborted', 'superseded'])

/** The components every Educa version runs. */
export const EDUCA_COMPONENTS = ['catalog', 'web']

/** `educa@1.1` → `1.1`. */
export const versionOf = (id: string) => id.slice(id.indexOf('@') + 1)

/**
 * Every agent sees every other alive (none suspect, dead or missing) and they
 * all follow the same manager, which has quorum.
 */
export async function converged(cluster: ChaosCluster): Promise<CheckResult> {
  const problems: string[] = []
  const managers = new Set<string | null>()
  for (const node of cluster.nodes) {
    if (node.child == null) {
      problems.push(`${node.name} is not running`)
      continue
    }
    const [members, manager] = await Promise.all([
      getJson<MemberView[]>(node, '/api/members'),
      getJson<ManagerStatus>(node, '/api/manager'),
    ])
    for (const other of cluster.nodes) {
      const seen = members.find((m) => m.id === other.id)
      if (seen?.state !== 'alive')
        problems.push(`${node.name} sees ${other.name} ${seen?.state ?? 'missing'}`)
    }
    managers.add(manager.manager)
    if (!manager.quorum) problems.push(`${node.name} has no quorum`)
  }
  if (managers.size !== 1 || managers.has(null))
    problems.push(`managers seen: ${[...managers].map((m) => nameOf(cluster, m)).join(', ')}`)
  return problems.length === 0 ? ok() : bad(problems.join('; '))
}

/**
 * The node is on exactly one version: its runtime is done (not switching,
 * installing or failed), the version it runs is the one it was told to run,
 * and every Educa component runs once, ready, at that version.
 */
export async function oneVersion(node: ChaosNode): Promise<CheckResult> {
  const status = await getJson<RuntimeStatus>(node, '/api/components')
  const problems: string[] = []
  if (status.phase !== 'done')
    problems.push(`phase ${status.phase}${status.error ? ` (${status.error})` : ''}`)
  if (status.active == null || status.active !== status.target)
    problems.push(`active ${status.active} but target ${status.target}`)
  const names = status.components.map((c) => c.name).sort()
  if (names.join() !== EDUCA_COMPONENTS.join()) problems.push(`components ${names.join(', ') || 'none'}`)
  const expected = status.active == null ? null : versionOf(status.active)
  for (const c of status.components) {
    if (c.state !== 'ready') problems.push(`${c.name} ${c.state}`)
    if (c.version !== expected || c.distribution !== status.active)
      problems.push(`${c.name} runs ${c.distribution} (${c.version}), not ${status.active}`)
  }
  return problems.length === 0 ? ok(status.active ?? '') : bad(`${node.name}: ${problems.join('; ')}`)
}

/**
 * No component process of the killed run is left: every process carrying the
 * node's runtime mark is a component the restarted agent reports, a child of
 * the new agent process, running from the install folder of the active version,
 * one per component; none of the pids seen before the kill survives outside it.
 */
export async function noOrphans(node: ChaosNode, before: number[]): Promise<CheckResult> {
  const agentPid = node.child?.pid
  if (agentPid == null) return bad(`${node.name} is not running`)
  const status = await getJson<RuntimeStatus>(node, '/api/components')
  const marked = await markedProcesses(node.dataDir)
  const reported = new Map(status.components.filter((c) => c.pid != null).map((c) => [c.pid!, c]))
  const problems: string[] = []
  for (const p of marked) {
    const component = reported.get(p.pid)
    if (component == null) {
      problems.push(`pid ${p.pid} (cwd ${p.cwd}, parent ${p.ppid}) is no component of the agent`)
      continue
    }
    if (p.ppid !== agentPid)
      problems.push(`${component.name} pid ${p.pid} has parent ${p.ppid}, not the agent`)
    const folder = join(node.dataDir, 'components', component.name, `${component.version}-`)
    if (p.cwd == null || !p.cwd.startsWith(folder))
      problems.push(`${component.name} pid ${p.pid} runs in ${p.cwd}, not ${folder}*`)
  }
  const alive = new Set(marked.map((p) => p.pid))
  for (const pid of before)
    if (alive.has(pid) && !reported.has(pid)) problems.push(`pid ${pid} outlived the kill`)
  for (const pid of reported.keys()) if (!alive.has(pid)) problems.push(`reported pid ${pid} is not running`)
  const perName = new Map<string, number>()
  for (const p of marked) {
    const name = reported.get(p.pid)?.name
    if (name != null) perName.set(name, (perName.get(name) ?? 0) + 1)
  }
  for (const [name, count] of perName) if (count > 1) problems.push(`${count} instances of ${name}`)
  return problems.length === 0
    ? ok(`${marked.length} component process(es), ${before.length} before the kill`)
    : bad(`${node.name}: ${problems.join('; ')}`)
}

/**
 * The trial's rollout is over (done, or failed / rolled back / aborted /
 * superseded with a reason), and when done every node runs its version. No
 * rollout in the trail is left running either.
 */
export async function rolloutSettled(cluster: ChaosCluster, rolloutId: string | null): Promise<CheckResult> {
  const asker = cluster.running()[0]
  if (asker == null) return bad('no agent running')
  const rollouts = await getJson<RolloutView[]>(asker, '/api/rollouts')
  const open = rollouts.filter((r) => !FINISHED.has(r.state))
  if (rolloutId == null)
    return open.length === 0 ? ok('no rollout in this trial') : bad(`${describe(open)} not finished`)
  const rollout = rollouts.find((r) => r.id === rolloutId)
  if (rollout == null) return bad(`rollout ${rolloutId} is not in the trail`)
  if (!FINISHED.has(rollout.state))
    return bad(`${rollout.id} ${rollout.state}: ${progressOf(cluster, rollout)}`)
  if (open.length > 0) return bad(`${describe(open)} not finished`)
  if (rollout.state !== 'done') {
    if (rollout.reason == null || rollout.reason === '')
      return bad(`${rollout.id} ${rollout.state} without a reason`)
    return ok(`${rollout.state}: ${rollout.reason}`)
  }
  const off: string[] = []
  for (const node of cluster.nodes) {
    const status = await getJson<RuntimeStatus>(node, '/api/components')
    if (status.active !== rollout.distribution) off.push(`${node.name} on ${status.active}`)
  }
  return off.length === 0
    ? ok(`done (${progressOf(cluster, rollout)})`)
    : bad(`${rollout.id} done but ${off.join(', ')}, not ${rollout.distribution}`)
}

/** The node holds every version in `complete` whole. */
export async function holds(node: ChaosNode, complete: string[]): Promise<CheckResult> {
  if (complete.length === 0) return ok()
  const list = await getJson<DistributionView[]>(node, '/api/distributions')
  const missing = complete.filter((id) => list.find((d) => d.id === id)?.complete !== true)
  if (missing.length === 0) return ok(`holds ${complete.join(', ')}`)
  const progress = missing.map((id) => {
    const d = list.find((x) => x.id === id)
    return d == null ? `${id} unknown` : `${id} ${d.progress.chunks}/${d.progress.total} chunks`
  })
  return bad(`${node.name}: ${progress.join(', ')}`)
}

/** `POST /api/verify`: every whole blob re-hashed; nothing corrupt. */
export async function storeVerifies(node: ChaosNode): Promise<CheckResult> {
  const result = await postJson<{ checked: number; corrupt: string[] }>(node, '/api/verify', {}, 180_000)
  return result.corrupt.length === 0
    ? ok(`${result.checked} blobs verified`)
    : bad(
        `${node.name}: ${result.corrupt.length} of ${result.checked} blobs corrupt: ${result.corrupt.join(', ')}`,
      )
}

/**
 * Nothing half-written is left in the data folder once the node is settled: no
 * upload temp files, no partial downloads when every version is complete, no
 * unpack or config temp folders.
 */
export async function noDebris(node: ChaosNode): Promise<CheckResult> {
  const list = (dir: string) => readdir(dir).catch(() => [] as string[])
  const found: string[] = []
  for (const name of await list(join(node.dataDir, 'blobs', 'tmp'))) found.push(`blobs/tmp/${name}`)
  const distributions = await getJson<DistributionView[]>(node, '/api/distributions')
  if (distributions.every((d) => d.complete))
    for (const name of await list(join(node.dataDir, 'blobs', 'partial')))
      found.push(`blobs/partial/${name.slice(0, 12)}…`)
  const components = join(node.dataDir, 'components')
  for (const component of await list(components))
    for (const name of await list(join(components, component)))
      if (name.includes('.tmp-')) found.push(`components/${component}/${name}`)
  for (const name of await list(join(node.dataDir, 'configs')))
    if (name.includes('.tmp-') || name.includes('~tmp-')) found.push(`configs/${name}`)
  return found.length === 0 ? ok() : bad(`${node.name}: left behind ${found.join(', ')}`)
}

function describe(rollouts: RolloutView[]): string {
  return rollouts.map((r) => `${r.id} (${r.distribution}) ${r.state}`).join(', ')
}

function progressOf(cluster: ChaosCluster, rollout: RolloutView): string {
  return rollout.members.map((m) => `${nameOf(cluster, m.id)} ${m.status}`).join(', ')
}

export function nameOf(cluster: ChaosCluster, id: string | null): string {
  if (id == null) return 'none'
  return cluster.byId(id)?.name ?? id.slice(-6)
}
