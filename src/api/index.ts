/** The admin HTTP API (JSON under /api) and the page at `/`. */
export { type ApiBackend, type ApiInit, ApiServer } from './server.js'
export { countStates, type MemberView, memberView, type StatusView } from './views.js'
