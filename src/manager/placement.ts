import { createHash } from 'node:crypto'
import { PlacementError } from './errors.js'

/**
 * How one component is placed, from the distribution's `placement` object:
 * `{ "web": "all", "catalog": { "replicas": 2 }, "report": "partition" }`.
 */
export type PlacementRule = { kind: 'all' } | { kind: 'replicas'; count: number } | { kind: 'partition' }

export interface PlacementSpec {
  /** Per component name; components not named here run everywhere (`all`). */
  rules: Record<string, PlacementRule>
  /** Components that must land on the same node(s) (co-location), e.g. `[["web", "session"]]`. */
  together?: string[][]
  /** Components that should not share a node when there is a choice (anti-affinity), e.g. `[["db-a", "db-b"]]`. */
  apart?: string[][]
}

export interface Assignment {
  /** Component -> node ids (sorted). */
  nodes: Record<string, string[]>
  /** Components that could not be placed on any node (no eligible node): reported, never silently dropped. */
  unplaced: string[]
}

/** Top-level keys of `placement` that are not component names. */
const RESERVED = ['together', 'apart'] as const
type GroupKey = (typeof RESERVED)[number]

/**
 * Reads the manifest's `placement` (unknown JSON). Each component maps to
 * `"all"`, `{ "all": true }`, `"partition"` or `{ "replicas": N }` (N ≥ 1);
 * `together` and `apart` hold lists of component groups. A missing
 * `placement` means every component runs everywhere. Throws ERR_MANIFEST_INVALID
 * naming the component or field.
 */
export function parsePlacement(raw: unknown, components: readonly string[]): PlacementSpec {
  const spec: PlacementSpec = { rules: {} }
  if (raw == null) return spec
  if (!isRecord(raw)) throw new PlacementError('must be an object mapping component names to rules')
  const known = new Set(components)
  for (const key of Object.keys(raw).sort()) {
    const value = raw[key]
    if (isGroupKey(key)) {
      spec[key] = parseGroups(key, value, known)
      continue
    }
    if (!known.has(key)) {
      const list = [...known].sort().join(', ') || 'none'
      throw new PlacementError(`"${key}" is not a component of this distribution (components: ${list})`, key)
    }
    spec.rules[key] = parseRule(key, value)
  }
  // Co-located components cannot also be kept apart: say so instead of silently ignoring one.
  const unitOf = unionFind(components, spec.together ?? [])
  for (const group of spec.apart ?? []) {
    for (const [i, a] of group.entries()) {
      const b = group.slice(i + 1).find((other) => unitOf(other) === unitOf(a))
      if (b != null) throw new PlacementError(`"${a}" and "${b}" are also placed together`, 'apart')
    }
  }
  return spec
}

function parseRule(component: string, value: unknown): PlacementRule {
  const hint = 'use "all", "partition" or { "replicas": N }'
  if (value === 'all') return { kind: 'all' }
  if (value === 'partition') return { kind: 'partition' }
  if (typeof value === 'string') throw new PlacementError(`unknown rule "${value}"; ${hint}`, component)
  if (!isRecord(value)) throw new PlacementError(`must be a rule; ${hint}`, component)
  const keys = Object.keys(value)
  if (keys.length === 1 && keys[0] === 'all') {
    if (value.all !== true) throw new PlacementError('must be true', `${component}.all`)
    return { kind: 'all' }
  }
  if (keys.length === 1 && keys[0] === 'replicas') {
    const count = value.replicas
    if (typeof count !== 'number' || !Number.isSafeInteger(count) || count < 1)
      throw new PlacementError('must be a whole number of at least 1', `${component}.replicas`)
    return { kind: 'replicas', count }
  }
  throw new PlacementError(`unexpected fields ${keys.join(', ') || '(none)'}; ${hint}`, component)
}

function parseGroups(key: GroupKey, value: unknown, known: ReadonlySet<string>): string[][] {
  if (!Array.isArray(value))
    throw new PlacementError('must be a list of component groups, e.g. [["a", "b"]]', key)
  return value.map((group, i) => {
    const field = `${key}[${i}]`
    if (!Array.isArray(group)) throw new PlacementError('must be a list of component names', field)
    const members = [...new Set(group)]
    for (const member of members) {
      if (typeof member !== 'string') throw new PlacementError('must hold component names', field)
      if (!known.has(member))
        throw new PlacementError(`"${member}" is not a component of this distribution`, field)
    }
    if (members.length < 2) throw new PlacementError('needs at least two different components', field)
    return members as string[]
  })
}

/** One thing placed: a component, or a `together` group placed as one. */
interface Unit {
  /** Stable identity for hashing: the sorted member names. */
  key: string
  members: string[]
  rule: PlacementRule
}

/**
 * Decides which nodes run which components. Pure and deterministic: every
 * node that computes it from the same spec, members and previous assignment
 * gets the same answer, whatever the order of its inputs.
 *
 * - `all`: every node.
 * - `replicas: N`: N distinct nodes (all of them when there are fewer). With
 *   `previous`, nodes that still exist are kept (sticky, up to N; a join moves
 *   nothing already placed); missing replicas are filled by rendezvous
 *   (highest-random-weight) hashing, so without `previous` a join or leave
 *   also moves only the replicas whose top-N set changed.
 * - `partition`: exactly one node each, spread so that the number of partition
 *   components per node differs by at most one (when `together` groups allow).
 *   Previous placements are kept while the bound holds; a node over the bound
 *   sheds the fewest components it must; free components go to the least
 *   loaded eligible node, ties broken by rendezvous score.
 * - `together`: members are placed as one unit on the same node set. For mixed
 *   rules the strictest wins: any `partition` member makes the unit one node;
 *   otherwise any `replicas` member makes it `replicas` with the largest count;
 *   otherwise `all`. (Strictest, because the unit can only run where every
 *   member is allowed to: fewer nodes never breaks a `replicas` or `partition`
 *   member's promise, more would.)
 * - `apart`: a preference used at every choice (filling replicas, placing or
 *   shedding partition components): nodes that hold fewer of the group's other
 *   members rank first. It never overrides a count or balance bound, and it
 *   never moves a component that is already placed by itself; call without
 *   `previous` to lay everything out afresh after such a spec change.
 *
 * With no nodes, every component is `unplaced` and maps to `[]`.
 */
export function place(
  spec: PlacementSpec,
  components: readonly string[],
  nodes: readonly string[],
  previous?: Assignment,
): Assignment {
  const names = uniqueSorted(components)
  const ids = uniqueSorted(nodes)
  const units = unitsOf(spec, names)
  const peers = apartPeers(spec, units)
  const score = rendezvous()
  /** Where each unit runs, built up phase by phase. */
  const placed = new Map<Unit, Set<string>>()

  if (ids.length > 0) {
    const present = new Set(ids)
    /** How many peers of `unit` already run on `node`: the `apart` preference. */
    const conflicts = (unit: Unit, node: string) => {
      let n = 0
      for (const peer of peers.get(unit) ?? []) if (placed.get(peer)?.has(node)) n++
      return n
    }
    /** Previous nodes of the unit's members that still exist, with how many members were there. */
    const votes = (unit: Unit) => {
      const count = new Map<string, number>()
      for (const member of unit.members)
        for (const node of previous?.nodes[member] ?? [])
          if (present.has(node)) count.set(node, (count.get(node) ?? 0) + 1)
      return count
    }

    for (const unit of units) if (unit.rule.kind === 'all') placed.set(unit, new Set(ids))

    // Replicas keep the nodes they had (sticky), most-voted first.
    const replicated = units.filter((u) => u.rule.kind === 'replicas')
    for (const unit of replicated) {
      const count = Math.min(replicaCount(unit), ids.length)
      const had = votes(unit)
      const kept = rank([...had.keys()], (n) => [-had.get(n)!, -score(unit, n)]).slice(0, count)
      placed.set(unit, new Set(kept))
    }

    placePartitions(
      units.filter((u) => u.rule.kind === 'partition'),
      ids,
      { placed, conflicts, votes, score },
    )

    // Missing replicas: fewest `apart` peers first, then rendezvous score.
    for (const unit of replicated) {
      const on = placed.get(unit)!
      const need = Math.min(replicaCount(unit), ids.length) - on.size
      if (need <= 0) continue
      const free = ids.filter((n) => !on.has(n))
      for (const node of rank(free, (n) => [conflicts(unit, n), -score(unit, n)]).slice(0, need)) on.add(node)
    }
  }

  const result: Record<string, string[]> = {}
  for (const unit of units) {
    const on = [...(placed.get(unit) ?? [])].sort(compareStrings)
    for (const member of unit.members) result[member] = [...on]
  }
  const sorted: Record<string, string[]> = {}
  for (const name of names) sorted[name] = result[name] ?? []
  return { nodes: sorted, unplaced: names.filter((n) => sorted[n]!.length === 0) }
}

interface PartitionContext {
  placed: Map<Unit, Set<string>>
  conflicts: (unit: Unit, node: string) => number
  votes: (unit: Unit) => Map<string, number>
  score: (unit: Unit, node: string) => bigint
}

/**
 * Puts each partition unit on one node. The bound: with W partition
 * components over N nodes, every node holds `lo = floor(W/N)` or
 * `hi = ceil(W/N)`, and at most `W mod N` nodes hold `hi`. Placing only where
 * the bound still holds ends balanced, because the total is exactly W.
 */
function placePartitions(units: Unit[], ids: string[], ctx: PartitionContext): void {
  if (units.length === 0) return
  const { placed, conflicts, votes, score } = ctx
  const weight = (u: Unit) => u.members.length
  const total = units.reduce((sum, u) => sum + weight(u), 0)
  const lo = Math.floor(total / ids.length)
  const hi = Math.ceil(total / ids.length)
  const roomAtHi = total % ids.length
  const load = new Map(ids.map((n) => [n, 0]))
  const onNode = new Map<string, Unit[]>(ids.map((n) => [n, []]))

  // 1. Keep each unit on its previous node (the one most of its members were on).
  for (const unit of units) {
    const had = votes(unit)
    const [node] = rank([...had.keys()], (n) => [-had.get(n)!, -score(unit, n)])
    if (node == null) continue
    placed.set(unit, new Set([node]))
    load.set(node, load.get(node)! + weight(unit))
    onNode.get(node)!.push(unit)
  }

  // 2. Shed what breaks the bound: units with the most `apart` peers beside them first, then the weakest score.
  const shed = (node: string, limit: number) => {
    const here = rank(onNode.get(node)!, (u) => [-conflicts(u, node), score(u, node)])
    while (load.get(node)! > limit) {
      const unit = here.shift()!
      placed.delete(unit)
      load.set(node, load.get(node)! - weight(unit))
    }
    onNode.set(node, here)
  }
  for (const node of ids) shed(node, hi)
  const high = rank(
    ids.filter((n) => load.get(n)! > lo),
    (n) => [-load.get(n)!],
  )
  for (const node of high.slice(roomAtHi)) shed(node, lo)

  // 3. Place the free units, heaviest first: fewest `apart` peers, least loaded, best score.
  const free = rank(
    units.filter((u) => !placed.has(u)),
    (u) => [-weight(u)],
  )
  for (const unit of free) {
    const w = weight(unit)
    const highCount = ids.filter((n) => load.get(n)! > lo).length
    const fits = (n: string) => {
      const after = load.get(n)! + w
      return after <= lo || (after <= hi && (load.get(n)! > lo || highCount < roomAtHi))
    }
    // Only `together` groups of several partition components can leave no fitting node; then least loaded first.
    const [node] = ids.some(fits)
      ? rank(ids.filter(fits), (n) => [conflicts(unit, n), load.get(n)!, -score(unit, n)])
      : rank(ids, (n) => [load.get(n)!, conflicts(unit, n), -score(unit, n)])
    placed.set(unit, new Set([node!]))
    load.set(node!, load.get(node!)! + w)
  }
}

/** Groups components into units (one per `together` group, one per other component), sorted by key. */
function unitsOf(spec: PlacementSpec, names: string[]): Unit[] {
  const root = unionFind(names, spec.together ?? [])
  const groups = new Map<string, string[]>()
  for (const name of names) {
    const r = root(name)
    groups.set(r, [...(groups.get(r) ?? []), name])
  }
  const units = [...groups.values()].map((members) => ({
    key: JSON.stringify(members),
    members,
    rule: strictest(members.map((m) => spec.rules[m] ?? { kind: 'all' })),
  }))
  return units.sort((a, b) => compareStrings(a.key, b.key))
}

function strictest(rules: PlacementRule[]): PlacementRule {
  if (rules.some((r) => r.kind === 'partition')) return { kind: 'partition' }
  const counts = rules.flatMap((r) => (r.kind === 'replicas' ? [r.count] : []))
  return counts.length > 0 ? { kind: 'replicas', count: Math.max(...counts) } : { kind: 'all' }
}

/** For each unit, the other units it shares an `apart` group with (members of one unit cannot be apart). */
function apartPeers(spec: PlacementSpec, units: Unit[]): Map<Unit, Set<Unit>> {
  const unitOf = new Map(units.flatMap((u) => u.members.map((m) => [m, u] as const)))
  const peers = new Map<Unit, Set<Unit>>()
  for (const group of spec.apart ?? []) {
    const inGroup = new Set(group.flatMap((m) => unitOf.get(m) ?? []))
    for (const a of inGroup)
      for (const b of inGroup) if (a !== b) peers.set(a, (peers.get(a) ?? new Set()).add(b))
  }
  return peers
}

/** Maps each name to a representative of its `together` group (the smallest member). */
function unionFind(names: readonly string[], groups: readonly string[][]): (name: string) => string {
  const parent = new Map(names.map((n) => [n, n]))
  const find = (n: string): string => {
    const p = parent.get(n) ?? n
    if (p === n) return n
    const r = find(p)
    parent.set(n, r)
    return r
  }
  for (const group of groups) {
    const members = group.filter((m) => parent.has(m))
    for (const m of members.slice(1)) {
      const [a, b] = [find(members[0]!), find(m)].sort(compareStrings) as [string, string]
      if (a !== b) parent.set(b, a)
    }
  }
  return find
}

function replicaCount(unit: Unit): number {
  return unit.rule.kind === 'replicas' ? unit.rule.count : 0
}

/**
 * Highest-random-weight score of a (unit, node) pair: the first 8 bytes of a
 * SHA-256, the same on every node and every run. Memoised per call of `place`.
 */
function rendezvous(): (unit: Unit, node: string) => bigint {
  const memo = new Map<string, bigint>()
  return (unit, node) => {
    const input = JSON.stringify([unit.key, node])
    let s = memo.get(input)
    if (s == null) {
      s = createHash('sha256').update(input).digest().readBigUInt64BE(0)
      memo.set(input, s)
    }
    return s
  }
}

/**
 * How many (component, node) pairs differ between two assignments: pairs
 * added plus pairs removed. Moving one component from a node to another is 2.
 */
export function moves(a: Assignment, b: Assignment): number {
  let n = 0
  for (const name of new Set([...Object.keys(a.nodes), ...Object.keys(b.nodes)])) {
    const before = new Set(a.nodes[name] ?? [])
    const after = new Set(b.nodes[name] ?? [])
    for (const node of before) if (!after.has(node)) n++
    for (const node of after) if (!before.has(node)) n++
  }
  return n
}

/**
 * Sorts by a key of numbers/bigints compared in order, ties broken by the item's
 * own order (string value, or unit key), so the result never depends on input order.
 */
function rank<T extends string | Unit>(items: T[], key: (item: T) => (number | bigint)[]): T[] {
  const keyed = items.map((item) => ({
    item,
    key: key(item),
    id: typeof item === 'string' ? item : item.key,
  }))
  keyed.sort((a, b) => {
    for (let i = 0; i < a.key.length; i++) {
      const x = a.key[i]!
      const y = b.key[i]!
      if (x !== y) return x < y ? -1 : 1
    }
    return compareStrings(a.id, b.id)
  })
  return keyed.map((k) => k.item)
}

function uniqueSorted(values: readonly string[]): string[] {
  return [...new Set(values)].sort(compareStrings)
}

/** Code-unit order, not locale order: every node must sort the same way. */
function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0
}

function isGroupKey(key: string): key is GroupKey {
  return (RESERVED as readonly string[]).includes(key)
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}
