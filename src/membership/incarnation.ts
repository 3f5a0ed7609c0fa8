import type { Claim, MemberRecord, MemberState } from './member.js'

/**
 * What a claim does to the view, by SWIM's ordering rules (as memberlist applies
 * them): only a member raises its own incarnation; `alive` with a higher
 * incarnation beats anything older; `suspect` and `dead` need an incarnation at
 * least the current one; `left` is final for its incarnation; claims about
 * members we never heard of are ignored unless they say the member is alive.
 */
export type Outcome =
  | { effect: 'ignore' }
  | { effect: 'join'; record: MemberRecord }
  | { effect: 'update'; record: MemberRecord; previous: MemberState }
  | { effect: 'suspect'; record: MemberRecord }
  | { effect: 'confirm'; from: string }
  | { effect: 'dead'; record: MemberRecord }
  | { effect: 'leave'; record: MemberRecord }
  /** A patch this view cannot apply (it lacks the incarnation patched): fetch the record. */
  | { effect: 'stale' }

const IGNORE: Outcome = { effect: 'ignore' }
const STALE: Outcome = { effect: 'stale' }

/** The outcome of `claim` about another member whose current record is `current`. */
export function applyClaim(current: MemberRecord | undefined, claim: Claim): Outcome {
  if (current == null) {
    if (claim.kind === 'patch') return STALE
    if (claim.kind !== 'alive') return IGNORE
    return { effect: 'join', record: { ...recordOf(claim), state: 'alive' } }
  }
  switch (claim.kind) {
    case 'patch': {
      if (claim.incarnation <= current.incarnation) return IGNORE
      // Patched from an incarnation this view does not hold, or back from dead or left
      // (a join, for which the whole record is wanted): ask for the record.
      if (claim.base !== current.incarnation || current.state === 'dead' || current.state === 'left')
        return STALE
      const meta: Record<string, unknown> = { ...current.meta, ...claim.set }
      for (const key of claim.drop) delete meta[key]
      const record: MemberRecord = { ...current, incarnation: claim.incarnation, meta, state: 'alive' }
      return { effect: 'update', record, previous: current.state }
    }
    case 'alive': {
      if (claim.incarnation <= current.incarnation) return IGNORE
      const record: MemberRecord = { ...recordOf(claim), state: 'alive' }
      // A member back from dead or left is a new arrival for everyone watching.
      if (current.state === 'dead' || current.state === 'left') return { effect: 'join', record }
      return { effect: 'update', record, previous: current.state }
    }
    case 'suspect': {
      if (current.state === 'dead' || current.state === 'left') return IGNORE
      if (claim.incarnation < current.incarnation) return IGNORE
      if (current.state === 'suspect' && claim.incarnation === current.incarnation) {
        return { effect: 'confirm', from: claim.from }
      }
      return { effect: 'suspect', record: { ...current, incarnation: claim.incarnation, state: 'suspect' } }
    }
    case 'dead': {
      if (current.state === 'dead' || current.state === 'left') return IGNORE
      if (claim.incarnation < current.incarnation) return IGNORE
      return { effect: 'dead', record: { ...current, incarnation: claim.incarnation, state: 'dead' } }
    }
    case 'left': {
      if (current.state === 'left') return IGNORE
      if (claim.incarnation < current.incarnation) return IGNORE
      return { effect: 'leave', record: { ...current, incarnation: claim.incarnation, state: 'left' } }
    }
  }
}

/**
 * The incarnation this node must announce after hearing `claim` about itself, or
 * null when nothing needs refuting. Accusations (suspect, dead, a stale left) and
 * any claim of a newer incarnation are answered by going one above them.
 */
export function refutation(selfIncarnation: number, claim: Claim): number | null {
  if (claim.incarnation < selfIncarnation) return null
  // Our own announcement coming back (a full record or a patch) is no accusation.
  if ((claim.kind === 'alive' || claim.kind === 'patch') && claim.incarnation === selfIncarnation) return null
  return claim.incarnation + 1
}

function recordOf(claim: Extract<Claim, { kind: 'alive' }>): Omit<MemberRecord, 'state'> {
  return { id: claim.id, addrs: claim.addrs, incarnation: claim.incarnation, meta: claim.meta }
}
