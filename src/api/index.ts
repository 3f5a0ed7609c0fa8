/** The admin HTTP API (JSON under /api) and the page at `/`. */

/** Its home is src/shared/http-listener.ts; re-exported for the folders that import it from here. */
export { isLoopback } from '../shared/index.js'

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
  loadTokens,
  MUTATING_ROUTES,
  ROLES,
  type Role,
  rolesFor,
  TokenTable,
} from './auth.js'
export {
  ApiAddressInUseError,
  ForbiddenError,
  ForbiddenHostError,
  ForbiddenOriginError,
  TOO_LARGE,
  UnauthorizedError,
} from './errors.js'
export {
  HTTP_STATUS,
  type HttpStatus,
  httpStatusOf,
  httpStatusOfCode,
  httpStatusTable,
  isKnownCode,
  type KnownErrorCode,
} from './http-status.js'
export type { NodesApi } from './node-routes.js'
export type { RuntimeApi } from './runtime-routes.js'
export { type ApiBackend, type ApiInit, ApiServer, createApiApp } from './server.js'
export { countStates, type MemberView, memberView, type StatusView } from './views.js'
export type { VotersApi } from './voter-routes.js'
