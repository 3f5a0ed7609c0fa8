import { z } from 'zod'
import {
  COMPONENT_STATES,
  type ComponentStatus as ComponentStatusType,
  type Endpoint as EndpointType,
  type RuntimePhase,
  type RuntimeStatus as RuntimeStatusType,
} from '../../runtime/index.js'
import { describes, everyOf } from './check.js'
import { isoTime } from './common.js'

/** The component runtime of one node, and service discovery (docs/components.md). */

export const ComponentState = z.enum(COMPONENT_STATES).meta({ id: 'ComponentState' })

export const ComponentStatus = describes<ComponentStatusType>()(
  z
    .object({
      name: z.string(),
      version: z.string(),
      distribution: z.string(),
      state: ComponentState,
      instance: z
        .union([z.literal(0), z.literal(1)])
        .describe('Which instance: 1 for a version started beside the running one during a switch'),
      pid: z.number().int().nullable(),
      port: z.number().int().nullable(),
      endpoint: z.string().nullable(),
      provides: z.array(z.string()),
      restarts: z.number().int(),
      lastExit: z
        .object({ code: z.number().int().nullable(), signal: z.string().nullable(), at: isoTime() })
        .nullable(),
      error: z.string().nullable(),
      since: isoTime(),
    })
    .meta({ id: 'ComponentStatus' }),
)

const RUNTIME_PHASES = everyOf<RuntimePhase>()([
  'idle',
  'waiting',
  'fetching',
  'installing',
  'switching',
  'done',
  'failed',
])

export const RuntimeStatus = describes<RuntimeStatusType>()(
  z
    .object({
      active: z.string().nullable().describe('The version this node committed to'),
      target: z.string().nullable().describe('The version it works towards'),
      phase: z.enum(RUNTIME_PHASES),
      error: z.string().nullable(),
      components: z.array(ComponentStatus),
      dsComponents: z
        .array(
          z.object({
            component: z.string().describe('The Shoal component (bundle) that declares it'),
            name: z.string().describe('The Declarative Services component name'),
            state: z.enum([
              'active',
              'satisfied',
              'unsatisfied-reference',
              'unsatisfied-configuration',
              'failed-activation',
              'disabled',
            ]),
            satisfied: z.boolean(),
            reason: z
              .string()
              .nullable()
              .describe('Why it is not satisfied (missing references, configuration, activation failure)'),
          }),
        )
        .describe("The Declarative Services components of this node's bundles (docs/osgi.md)"),
      lastSwitch: z
        .object({
          from: z.string().nullable(),
          to: z.string(),
          startedAt: isoTime(),
          installedAt: isoTime().nullable(),
          spawnedAt: isoTime().nullable(),
          readyAt: isoTime().nullable(),
          settledAt: isoTime().nullable(),
        })
        .nullable()
        .describe('When the steps of the last switch happened'),
    })
    .meta({ id: 'RuntimeStatus' }),
)

export const WeightRequest = z
  .strictObject({
    weight: z.number().int().min(0).max(256).describe('100 is the default; 0 gets no new requests'),
  })
  .meta({ id: 'WeightRequest' })

export const Weight = describes<{ name: string; weight: number }>()(
  z.object({ name: z.string(), weight: z.number().int() }).meta({ id: 'Weight' }),
)

export const Endpoint = describes<EndpointType>()(
  z
    .object({
      node: z.string(),
      component: z.string(),
      version: z.string(),
      endpoint: z.string().describe('http://HOST:PORT'),
      local: z.boolean().describe('On the node that answered'),
    })
    .meta({ id: 'Endpoint' }),
)

export const ServiceEndpoints = describes<{ service: string; endpoints: EndpointType[] }>()(
  z.object({ service: z.string(), endpoints: z.array(Endpoint) }).meta({ id: 'ServiceEndpoints' }),
)
