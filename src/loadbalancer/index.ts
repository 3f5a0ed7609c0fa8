/**
 * Load balancer: `shoal lb` joins the cluster as an observer, builds its backend
 * pool from member metadata, routes HTTP with the built-in proxy or drives
 * HAProxy, and confirms drains to the nodes.
 */
export { AdminServer, type AdminServerInit, type AdminServerSources } from './admin-server.js'
export {
  drainConfirmed,
  type LoadBalancerAnnouncement,
  loadBalancerAnnouncement,
} from './announcement.js'
export { type Backend, type BackendState, backendsOf } from './backends.js'
export { Balancer, type BalanceStrategy } from './balancer.js'
export { HaproxyError } from './errors.js'
export { HaproxyDriver, type HaproxyDriverInit, type HaproxyStatus } from './haproxy.js'
export { HaproxySink } from './haproxy-sink.js'
export {
  type BackendSink,
  LoadBalancer,
  type LoadBalancerComponents,
  type LoadBalancerInit,
} from './load-balancer.js'
export { HttpProxy, type ProxyInit, type ProxyStatus, VIA } from './proxy.js'
export {
  gatherTraffic,
  serveTraffic,
  TRAFFIC_TIMEOUT_MS,
  trafficProtocol,
} from './traffic-service.js'
