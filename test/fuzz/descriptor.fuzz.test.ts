import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { type ComponentDescriptor, componentsOf, parseDescriptor } from '../../src/runtime/descriptor.js'
import {
  assertCoded,
  FUZZ_TIMEOUT_MS,
  FuzzTarget,
  type Json,
  jsonText,
  mutated,
  outcome,
  randomBytes,
  thrown,
} from './harness.js'

/**
 * Component descriptors come inside signed manifests, and the agent also runs
 * `componentsOf` on the raw artifacts of a `POST /api/distributions` body before
 * the signature is checked. Whatever the input: no crash, a refusal is
 * ERR_MANIFEST_INVALID, and an accepted descriptor is one the runtime can run
 * without leaving its package.
 */
const target = new FuzzTarget('descriptor')
const CODES = ['ERR_MANIFEST_INVALID']

const web: Json = {
  name: 'web',
  version: '1.0',
  start: { node: 'server.mjs', args: ['--port', '0'] },
  env: { MODE: 'fast' },
  http: true,
  health: { http: '/healthz', status: 200, intervalMs: 500, timeoutMs: 1000 },
  readyDelayMs: 10,
  stopTimeoutMs: 100,
  provides: ['web', 'www'],
  requires: ['catalog', { service: 'db', hard: true }],
}
const worker: Json = {
  name: 'worker',
  start: { exec: 'bin/run', args: [] },
  health: { command: ['./check.sh', '--quick'] },
}
const bundle: Json = { name: 'prices', start: { osgi: { startLevel: 20 } }, provides: ['prices'] }
const artifacts: Json = [
  { name: 'web.tgz', kind: 'component', descriptor: web },
  { name: 'worker.tgz', kind: 'component', descriptor: worker },
  { name: 'prices.jar', kind: 'component', descriptor: bundle },
  { name: 'conf/app.json', kind: 'config' },
]

const NAME = /^[a-z0-9][a-z0-9._-]{0,62}$/
const insidePackage = (path: string) =>
  path.length > 0 &&
  !path.startsWith('/') &&
  !path.includes('\\') &&
  path.split('/').every((s) => s !== '..' && s !== '')
const noNul = (text: string) => !text.includes('\u0000')

/** What the runtime relies on in an accepted descriptor. */
function checkAccepted(d: ComponentDescriptor): void {
  expect(d.name).toMatch(NAME)
  for (const p of d.provides) expect(p).toMatch(NAME)
  for (const r of d.requires) expect(r.service).toMatch(NAME)
  const start = d.start
  if ('node' in start) expect(insidePackage(start.node)).toBe(true)
  // docs/components.md: a path with a "/" is inside the package, a bare name is looked up on PATH.
  else if ('exec' in start && start.exec.includes('/') && !start.exec.startsWith('/'))
    expect(insidePackage(start.exec)).toBe(true)
  // A bundle has no process of its own.
  if ('osgi' in start) expect(!d.http && d.health == null && Object.keys(d.env).length === 0).toBe(true)
  const strings = [
    ...('node' in start ? [start.node, ...start.args] : 'exec' in start ? [start.exec, ...start.args] : []),
    ...Object.values(d.env),
    ...(d.health?.command ?? []),
  ]
  // A NUL byte makes spawn throw on every node: refused when published instead.
  for (const s of strings) expect(noNul(s), `NUL in ${JSON.stringify(s)}`).toBe(true)
  expect(d.health == null || (d.health.http == null) !== (d.health.command == null)).toBe(true)
  // What was accepted parses again to itself (it is re-read from the manifest on every switch).
  expect(parseDescriptor('again', d)).toEqual(d)
}

describe('descriptor fuzzing', { timeout: FUZZ_TIMEOUT_MS }, () => {
  it('parseDescriptor: mutated node, exec and osgi descriptors are accepted runnable or refused with ERR_MANIFEST_INVALID', async () => {
    await target.check(
      fc.property(fc.oneof(mutated(web), mutated(worker), mutated(bundle)), (input) => {
        const result = outcome(() => parseDescriptor('web.tgz', input), CODES)
        if (result != null) checkAccepted(result.value)
      }),
    )
  })

  it('componentsOf: mutated artifact lists (raw request bodies) never crash', async () => {
    await target.check(
      fc.property(mutated(artifacts), (input) => {
        const list = Array.isArray(input) ? input : [input]
        const result = outcome(() => componentsOf(list as never), CODES)
        if (result != null) for (const d of result.value.values()) checkAccepted(d)
      }),
    )
  })

  it('parseDescriptor and componentsOf: random JSON is refused with a code', async () => {
    await target.check(
      fc.property(randomBytes, (bytes) => {
        let input: unknown
        try {
          input = JSON.parse(new TextDecoder().decode(bytes))
        } catch {
          return
        }
        outcome(() => parseDescriptor('x.tgz', input), CODES)
        outcome(() => componentsOf([input] as never), CODES)
        outcome(() => componentsOf([{ name: 'x.tgz', kind: 'component', descriptor: input }] as never), CODES)
      }),
    )
  })

  describe('regressions (counterexamples the fuzzer found)', () => {
    it('componentsOf skips an artifact that is not an object (was a TypeError: a 500 on POST /api/distributions)', () => {
      expect(componentsOf([null, 5, 'x', [], { name: 'a', kind: 'config' }] as never).size).toBe(0)
    })

    it('refuses an exec path that climbs out of the package', () => {
      const err = thrown(() => parseDescriptor('w.tgz', { name: 'w', start: { exec: 'bin/../../sh' } }))
      assertCoded(err, CODES)
    })

    it('refuses NUL bytes in what is passed to spawn', () => {
      for (const start of [
        { node: 'a\u0000.js' },
        { exec: 'run\u0000' },
        { node: 'a.js', args: ['\u0000'] },
      ]) {
        assertCoded(
          thrown(() => parseDescriptor('w.tgz', { name: 'w', start })),
          CODES,
        )
      }
      assertCoded(
        thrown(() => parseDescriptor('w.tgz', { name: 'w', start: { node: 'a.js' }, env: { A: 'x\u0000' } })),
        CODES,
      )
      assertCoded(
        thrown(() =>
          parseDescriptor('w.tgz', { name: 'w', start: { node: 'a.js' }, health: { command: ['ok\u0000'] } }),
        ),
        CODES,
      )
    })

    it('keeps a deep descriptor a coded refusal', () => {
      const deep = JSON.parse(jsonText({ name: 'w', start: { node: 'a.js', args: [nestedArgs(5000)] } }))
      assertCoded(
        thrown(() => parseDescriptor('w.tgz', deep)),
        CODES,
      )
    })
  })
})

function nestedArgs(depth: number): Json {
  let value: Json = 'x'
  for (let i = 0; i < depth; i++) value = [value]
  return value
}
