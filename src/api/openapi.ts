/** The OpenAPI 3.1 document of the admin API, served at `/api/openapi.json`. */
export const OPENAPI_DOCUMENT = {
  openapi: '3.1.0',
  info: { title: 'Shoal admin API', version: '0.1.0' },
  paths: {},
} as const
