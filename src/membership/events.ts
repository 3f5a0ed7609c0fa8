import type { Member } from './member.js'

/**
 * Events of the membership view, each with the member as the view now holds it.
 * - `member:join`: a member appeared (or came back after dead/left).
 * - `member:update`: new incarnation: metadata or addresses changed, or a suspicion was refuted.
 * - `member:suspect`: a member failed a probe and is suspected.
 * - `member:dead`: a suspicion ran out, or the cluster declared the member dead.
 * - `member:leave`: a member left gracefully.
 * - `member:reap`: a dead or left member was forgotten after the reap timeout.
 */
export interface MembershipEvents {
  'member:join': Member
  'member:update': Member
  'member:suspect': Member
  'member:dead': Member
  'member:leave': Member
  'member:reap': Member
}
