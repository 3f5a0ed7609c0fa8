import { describe, expect, it } from 'vitest'
import { planBundles, type WantedBundle } from '../../src/runtime/osgi/bundle-plan.js'

const want = (name: string, sha256: string, startLevel: number): WantedBundle => ({
  name,
  sha256,
  path: `/store/${sha256}`,
  startLevel,
  version: '1.0',
  distribution: 'app@1.0',
})

describe('planBundles', () => {
  it('installs everything into an empty framework, then starts by start level', () => {
    const steps = planBundles(new Map(), [want('client', 'c1', 3), want('greeter', 'g1', 2)])
    expect(steps).toEqual([
      { op: 'install', name: 'client', path: '/store/c1', startLevel: 3 },
      { op: 'install', name: 'greeter', path: '/store/g1', startLevel: 2 },
      { op: 'start', name: 'greeter' },
      { op: 'start', name: 'client' },
    ])
  })

  it('touches only the bundle whose hash changed, and refreshes the wiring after it', () => {
    const installed = new Map([
      ['greeter', { id: 5, sha256: 'g1' }],
      ['client', { id: 6, sha256: 'c1' }],
    ])
    const steps = planBundles(installed, [want('greeter', 'g2', 2), want('client', 'c1', 3)])
    expect(steps.filter((s) => s.op !== 'start')).toEqual([
      { op: 'update', name: 'greeter', id: 5, path: '/store/g2' },
      { op: 'refresh' },
    ])
  })

  it('uninstalls bundles no longer wanted, and does nothing but start when nothing changed', () => {
    const installed = new Map([
      ['greeter', { id: 5, sha256: 'g1' }],
      ['old', { id: 7, sha256: 'o1' }],
    ])
    expect(planBundles(installed, [want('greeter', 'g1', 2)])).toEqual([
      { op: 'uninstall', name: 'old', id: 7 },
      { op: 'refresh' },
      { op: 'start', name: 'greeter' },
    ])
    expect(planBundles(new Map([['greeter', { id: 5, sha256: 'g1' }]]), [want('greeter', 'g1', 2)])).toEqual([
      { op: 'start', name: 'greeter' },
    ])
  })
})
