import type { DsComponentInfo, DsComponentState, ManagementClient } from './management-client.js'

/**
 * Declarative Services components as the runtime shows them (`shoal components`,
 * member metadata `osgi.components[]`, the dashboard): which Shoal component
 * (bundle) declares each, its state, and why it is not satisfied.
 */

/** One DS component of one of this node's bundles. */
export interface DsComponentStatus {
  /** The Shoal component whose bundle declares it. */
  component: string
  /** The DS component name (`<scr:component name=…>`). */
  name: string
  state: DsComponentState
  /** Active or satisfied: it has what it needs (a delayed component is satisfied until first used). */
  satisfied: boolean
  /** Why not, in one line: the missing references, the missing configuration, the activation failure; null when satisfied. */
  reason: string | null
}

/** The most of a reason a component announces in member metadata. */
export const DS_REASON_CHARS = 160

/** Reads every DS component from the framework (none without SCR). */
export function readDsComponents(client: ManagementClient): Promise<DsComponentInfo[]> {
  return client.components()
}

/** The DS components declared by our bundles (bundle id → Shoal component name), in a stable order. */
export function dsComponentStatuses(
  components: readonly DsComponentInfo[],
  ours: ReadonlyMap<number, string>,
): DsComponentStatus[] {
  const statuses: DsComponentStatus[] = []
  for (const c of components) {
    const component = c.bundle == null ? undefined : ours.get(c.bundle)
    if (component == null) continue
    const satisfied = c.state === 'active' || c.state === 'satisfied'
    statuses.push({
      component,
      name: c.name,
      state: c.state,
      satisfied,
      reason: satisfied ? null : reasonOf(c),
    })
  }
  return statuses.sort((a, b) => a.component.localeCompare(b.component) || a.name.localeCompare(b.name))
}

/** Why a component is not satisfied, as a user would want to read it. */
export function reasonOf(c: DsComponentInfo): string {
  switch (c.state) {
    case 'unsatisfied-reference':
      return c.unsatisfied.length === 0
        ? 'a mandatory reference has no service'
        : `no service for ${c.unsatisfied
            .map(
              (r) =>
                `${r.name} (${r.interface ?? 'unknown interface'}${r.target == null ? '' : ` ${r.target}`})`,
            )
            .join(', ')}`
    case 'unsatisfied-configuration': {
      const pids = c.configurationPid.length > 0 ? c.configurationPid : [c.name]
      return `no configuration for PID ${pids.join(', ')} (configuration-policy require; set config.osgi in the distribution)`
    }
    case 'failed-activation':
      // SCR's failure is the whole stack trace; its first line says what happened.
      return `activation failed: ${c.failure?.split('\n')[0]?.trim() || 'no reason given'}`
    case 'disabled':
      return 'disabled'
    default:
      return `state ${c.state}`
  }
}

/** One DS component in member metadata: `{"component","name","state","reason"?}`. */
export function dsComponentMetadata(
  status: DsComponentStatus,
  reasonChars = DS_REASON_CHARS,
): { component: string; name: string; state: DsComponentState; reason?: string } {
  return {
    component: status.component,
    name: status.name,
    state: status.state,
    ...(status.reason == null || reasonChars <= 0 ? {} : { reason: status.reason.slice(0, reasonChars) }),
  }
}
