/**
 * Metrics: Prometheus exposition (prom-client) for agents (`GET /metrics` on the
 * admin API) and the load balancer. Each process part keeps its own registry so
 * several agents can share a process; Node's process metrics are started once,
 * with the first agent or metrics listener.
 * docs/metrics.md lists every metric.
 */
export { AgentMetrics, type AgentMetricsSources } from './agent-metrics.js'
export { type CollectedInit, collectedCounter, collectedGauge, flag, type Reading } from './collected.js'
export { EXPOSITION_CONTENT_TYPE, exposition, startProcessMetrics } from './exposition.js'
export { MetricsServer, type MetricsServerInit } from './metrics-server.js'
export { RateMeter } from './rate-meter.js'
