import { z } from 'zod'
import { type Announced, Announcement, type Member, metadataBytes } from '../membership/index.js'
import type { RuntimePhase } from './runtime.js'
import { COMPONENT_STATES } from './supervisor.js'

/** Weight a component announces unless an operator or a rollout set another (0–256, HAProxy's range). */
export const DEFAULT_WEIGHT = 100
/** The most of a failed component's error announced with it. */
export const COMPONENT_ERROR_CHARS = 300
/** The most of a failed switch's error announced in `runtime.error`. */
export const RUNTIME_ERROR_CHARS = 500

const RUNTIME_PHASES = [
  'idle',
  'waiting',
  'fetching',
  'installing',
  'switching',
  'done',
  'failed',
] as const satisfies readonly RuntimePhase[]

const name = z.string().min(1).max(128)
const version = z.string().max(128)

/** One component instance as a node announces it (`components[]`). */
const publishedComponent = z.looseObject({
  name,
  version,
  /** Only the second instance of a make-before-break switch says which it is (shared/instance-key.ts). */
  instance: z.number().int().min(0).max(1).optional(),
  state: z.enum(COMPONENT_STATES),
  /** Why it failed (at most COMPONENT_ERROR_CHARS), so the manager keeps the reason in the rollout. */
  error: z.string().optional(),
  /** `http://host:port` where it serves, while it does. */
  endpoint: z.string().max(256).nullable().optional(),
  /** The services it provides (its own name when absent). */
  provides: z.array(name).optional(),
  /** Share of load-balanced traffic, 0–256 (DEFAULT_WEIGHT when absent). */
  weight: z.number().min(0).max(256).optional(),
})
export type PublishedComponent = z.output<typeof publishedComponent>

/**
 * What the runtime announces about its node: the version it committed to, every
 * component instance with its state and endpoint, the current switch, its OSGi
 * bundles, and whether all is ready. All of it changes as a rollout goes, so it
 * reaches the watchers only (load balancers, the manager's voters; KeySpec.reach). Sizes: docs/architecture.md, "Member metadata".
 */
export const runtimeAnnouncement = new Announcement('runtime', {
  distribution: {
    schema: z.string().max(200).nullable(),
    maxBytes: 256,
    about: 'the version this node committed to (`name@version`), or null',
    reach: 'watchers',
  },
  components: {
    schema: z.array(publishedComponent).max(128),
    maxBytes: 8192,
    about:
      '`[{"name","version","instance"?,"state","error"?,"endpoint","provides","weight"}]`, about 120 bytes each: ~35 components switching make-before-break',
    reach: 'watchers',
  },
  runtime: {
    schema: z.looseObject({
      target: z.string().max(200).nullable().optional(),
      phase: z.enum(RUNTIME_PHASES).nullable().optional(),
      error: z.string().nullable().optional(),
    }),
    maxBytes: 1024,
    about: '`{"target","phase","error"}` of the current or last switch (error cut to 500 characters)',
    reach: 'watchers',
  },
  osgi: {
    schema: z
      .looseObject({
        bundles: z.array(
          z.looseObject({
            component: z.string().optional(),
            symbolicName: z.string().nullable().optional(),
            version: z.string().optional(),
            state: z.string().optional(),
          }),
        ),
        services: z.array(
          z.looseObject({
            component: z.string().optional(),
            objectClass: z.array(z.string()).optional(),
            properties: z.record(z.string(), z.unknown()).optional(),
          }),
        ),
        /** Declarative Services components of its bundles (absent from agents before issue 22). */
        components: z
          .array(
            z.looseObject({
              component: z.string().optional(),
              name: z.string().optional(),
              state: z.string().optional(),
              reason: z.string().optional(),
            }),
          )
          .optional(),
      })
      .nullable(),
    maxBytes: 1536,
    about:
      "the node's OSGi bundles, the services they registered and their DS components (docs/osgi.md); trimmed to fit (fitOsgiAnnouncement)",
    reach: 'watchers',
  },
  ready: {
    schema: z.boolean(),
    maxBytes: 8,
    about: 'every component of this node is ready',
    reach: 'watchers',
  },
})
export type RuntimeAnnouncement = Announced<typeof runtimeAnnouncement>

type OsgiAnnouncement = NonNullable<RuntimeAnnouncement['osgi']>

/**
 * The node's OSGi view cut to the `osgi` key's budget, dropping the least useful
 * first: service properties, then long DS reasons, then the services, then the
 * reasons, then the DS components that are satisfied (the unsatisfied ones are
 * what an operator looks for), then every DS component. Bundles always stay.
 */
export function fitOsgiAnnouncement(full: OsgiAnnouncement | null): OsgiAnnouncement | null {
  if (full == null) return null
  const budget = runtimeAnnouncement.budget('osgi')
  const components = full.components ?? []
  const shortReasons = components.map((c) => (c.reason == null ? c : { ...c, reason: c.reason.slice(0, 60) }))
  const noReasons = components.map(({ reason: _, ...c }) => c)
  const candidates: OsgiAnnouncement[] = [
    full,
    { ...full, services: full.services.map(({ properties: _, ...service }) => service) },
    {
      ...full,
      services: full.services.map(({ properties: _, ...service }) => service),
      components: shortReasons,
    },
    { ...full, services: [], components: shortReasons },
    { ...full, services: [], components: noReasons },
    {
      ...full,
      services: [],
      components: noReasons.filter((c) => c.state !== 'active' && c.state !== 'satisfied'),
    },
  ]
  return (
    candidates.find((c) => metadataBytes(c) <= budget) ?? {
      bundles: full.bundles,
      services: [],
      components: [],
    }
  )
}

/** A component instance some alive member announces, with the member that runs it. */
export interface AnnouncedInstance {
  member: Member
  component: PublishedComponent
  /** Where it serves (absent: it announces no endpoint, so it serves nothing). */
  endpoint: string
}

/**
 * Every instance of `service` the alive members announce in one of `states` with
 * an endpoint: what service discovery (services.ts) and the load balancer's
 * backends are both made of. A component provides its own name unless it lists
 * what it provides.
 */
export function instancesOf(
  members: readonly Member[],
  service: string,
  states: readonly PublishedComponent['state'][],
): AnnouncedInstance[] {
  const found: AnnouncedInstance[] = []
  for (const member of members) {
    if (member.state !== 'alive') continue
    for (const component of runtimeAnnouncement.of(member).components ?? []) {
      const provides = component.provides ?? [component.name]
      if (!provides.includes(service) || !states.includes(component.state) || component.endpoint == null)
        continue
      found.push({ member, component, endpoint: component.endpoint })
    }
  }
  return found
}
