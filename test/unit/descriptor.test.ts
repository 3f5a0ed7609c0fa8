import { describe, expect, it } from 'vitest'
import { httpStatusOf } from '../../src/api/index.js'
import { componentsOf, parseDescriptor } from '../../src/runtime/index.js'

describe('component descriptors', () => {
  it('fills in defaults', () => {
    expect(parseDescriptor('web.tgz', { name: 'web', start: { node: 'server.mjs' } })).toEqual({
      name: 'web',
      start: { node: 'server.mjs', args: [] },
      env: {},
      http: false,
      readyDelayMs: 0,
      exclusive: false,
      stopTimeoutMs: 5000,
      provides: ['web'],
      requires: [],
    })
    const full = parseDescriptor('web.tgz', {
      name: 'web',
      start: { exec: 'bin/run', args: ['--fast'] },
      http: true,
      health: { http: '/healthz' },
      requires: ['catalog', { service: 'db', hard: true }],
    })
    expect(full.health).toEqual({ http: '/healthz', status: 200, intervalMs: 1000, timeoutMs: 2000 })
    expect(full.requires).toEqual([
      { service: 'catalog', hard: false },
      { service: 'db', hard: true },
    ])
  })

  it.each([
    ['no start', { name: 'web' }, /start/],
    ['a bad name', { name: 'Web Server', start: { node: 'a.js' } }, /name/],
    ['an entry point outside the package', { name: 'web', start: { node: '../../etc/x.js' } }, /start/],
    ['an absolute entry point', { name: 'web', start: { node: '/bin/sh' } }, /start/],
    [
      'both health checks',
      { name: 'web', start: { node: 'a.js' }, health: { http: '/', command: ['true'] } },
      /health/,
    ],
    ['no health check kind', { name: 'web', start: { node: 'a.js' }, health: {} }, /health/],
    ['an unknown field', { name: 'web', start: { node: 'a.js' }, restart: 'always' }, /restart|Unrecognized/],
    ['a bad env name', { name: 'web', start: { node: 'a.js' }, env: { 'A-B': '1' } }, /env/],
  ])('refuses %s with ERR_MANIFEST_INVALID naming the artifact', (_what, raw, field) => {
    let caught: unknown
    try {
      parseDescriptor('web.tgz', raw)
    } catch (err) {
      caught = err
    }
    expect(caught).toMatchObject({ code: 'ERR_MANIFEST_INVALID' })
    expect(httpStatusOf(caught)).toBe(400)
    expect((caught as Error).message).toMatch(/^component web\.tgz: /)
    expect((caught as Error).message).toMatch(field)
  })

  it('requires a descriptor on every component and unique names', () => {
    const web = { name: 'web.tgz', kind: 'component', descriptor: { name: 'web', start: { node: 'a.js' } } }
    expect([...componentsOf([web, { name: 'conf.json', kind: 'config' }]).keys()]).toEqual(['web'])
    expect(() => componentsOf([{ name: 'x.tgz', kind: 'component' }])).toThrow(/no descriptor/)
    expect(() => componentsOf([web, { ...web, name: 'web2.tgz' }])).toThrow(/also named "web"/)
  })
})
