/**
 * Manager: what the cluster decides as a whole. For now the desired version (a
 * signed, revisioned record every node follows) and the progress of rollouts;
 * election, placement and rollout strategies build on these.
 */
export {
  DESIRED_KEY,
  type DesiredRecord,
  DesiredVersion,
  type DesiredVersionComponents,
  type DesiredVersionEvents,
  ROLLOUT_STRATEGIES,
  type RolloutStrategy,
  type SignedDesiredRecord,
} from './desired-version.js'
export {
  type RolloutNode,
  type RolloutState,
  type RolloutView,
  rolloutView,
  workers,
} from './rollout-view.js'
