import { describe, expect, it } from 'vitest'
import { httpStatusOf } from '../../src/api/index.js'
import { checkDistribution, MAX_CONFIG_BYTES } from '../../src/artifacts/index.js'

/** A component artifact as a manifest lists it (only what the rules read). */
const component = (file: string, descriptor: Record<string, unknown>) => ({
  name: file,
  kind: 'component',
  descriptor,
})
const web = component('web.tgz', { name: 'web', start: { node: 'main.mjs' }, http: true })
const worker = component('worker.tgz', { name: 'worker', start: { exec: 'bin/run' } })

describe('checkDistribution: the rules shoal publish, the agent and a rollout apply', () => {
  it('accepts a good version and answers its components and placement', () => {
    const layout = checkDistribution({
      artifacts: [web, worker, { name: 'conf/app.json', kind: 'config' }],
      config: { greeting: 'hello' },
      placement: { web: 'all', worker: { replicas: 2 }, apart: [['web', 'worker']] },
    })
    expect([...layout.components.keys()]).toEqual(['web', 'worker'])
    expect(layout.placement.rules).toEqual({ web: { kind: 'all' }, worker: { kind: 'replicas', count: 2 } })
    expect(checkDistribution({ artifacts: [{ name: 'a.bin', kind: 'resource' }], config: {} })).toMatchObject(
      {
        placement: { rules: {} },
      },
    )
  })

  it.each([
    [
      'a placement rule naming no component (a typo)',
      { artifacts: [web], config: {}, placement: { wbe: 'all' } },
      /^placement\.wbe: "wbe" is not a component of this distribution \(components: web\)/,
    ],
    [
      'a placement rule out of range',
      { artifacts: [web], config: {}, placement: { web: { replicas: 0 } } },
      /^placement\.web\.replicas: must be a whole number of at least 1/,
    ],
    [
      'a descriptor missing its start',
      { artifacts: [component('web.tgz', { name: 'web' })], config: {} },
      /^component web\.tgz: start: /,
    ],
    [
      'a component without a descriptor',
      { artifacts: [{ name: 'web.tgz', kind: 'component' }], config: {} },
      /^component web\.tgz: has no descriptor/,
    ],
    [
      'two components of one name',
      { artifacts: [web, component('web2.tgz', { name: 'web', start: { node: 'x.js' } })], config: {} },
      /another component is also named "web"/,
    ],
    [
      'a descriptor on an artifact that is not a component (a forgotten "kind")',
      {
        artifacts: [
          { name: 'web.tgz', kind: 'resource', descriptor: { name: 'web', start: { node: 'a.js' } } },
        ],
        config: {},
      },
      /^artifacts\.0 \(web\.tgz\)\.descriptor: only a component has a descriptor; give it "kind": "component"/,
    ],
    [
      "a config too large for a component's environment",
      { artifacts: [web], config: { blob: 'x'.repeat(MAX_CONFIG_BYTES) } },
      /^config: \d+ bytes of JSON, over the 65536/,
    ],
    ['a config that is not an object', { artifacts: [web], config: ['a'] }, /^config: must be an object/],
  ])('refuses %s with ERR_MANIFEST_INVALID naming the field', (_what, content, message) => {
    let thrown: unknown
    try {
      checkDistribution(content)
    } catch (err) {
      thrown = err
    }
    expect(thrown).toMatchObject({ code: 'ERR_MANIFEST_INVALID' })
    expect(httpStatusOf(thrown)).toBe(400)
    expect((thrown as Error).message).toMatch(message)
  })
})
