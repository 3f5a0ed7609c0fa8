/** The admin HTTP API (JSON under /api) and the page at `/`. */

export {
  AgentApi,
  type AgentApiComponents,
  type AgentApiInit,
  distributionCounts,
  type NodeOperationsApi,
} from './agent-api.js'
export type { ArtifactsApi, UnpublishedView } from './artifact-routes.js'
export {
  type Caller,
  callerOf,
  isLoopback,
  loadTokens,
  MUTATING_ROUTES,
  ROLES,
  type Role,
  rolesFor,
  TokenTable,
} from './auth.js'
export { HTTP_STATUS, type HttpStatus, httpStatusOf } from './errors.js'
export type { NodesApi } from './node-routes.js'
export type { RuntimeApi } from './runtime-routes.js'
export { type ApiBackend, type ApiInit, ApiServer, createApiApp } from './server.js'
export { countStates, type MemberView, memberView, type StatusView } from './views.js'
