/**
 * The name every reader gives one running instance of a component:
 * `<node id>/<component>`, or `<node id>/<component>#<instance>` for the second
 * instance a node runs while it switches versions make-before-break (the new
 * version starts beside the old one, docs/manager.md). Load balancers key their
 * backends by it and announce drained backends by it; the runtime waits for it.
 */
export function instanceKey(node: string, component: string, instance = 0): string {
  return instance === 0 ? `${node}/${component}` : `${node}/${component}#${instance}`
}
