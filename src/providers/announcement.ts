import { z } from 'zod'
import { type Announced, Announcement } from '../membership/index.js'

/** Member metadata keys a launched node sets about itself, so any agent can remove it. */
export const PROVIDER_KEY = 'provider'
export const HANDLE_KEY = 'handle'

/**
 * What a node says about how it was launched and labelled (from `shoal agent`'s
 * options, which a provider fills): any agent can then remove it through the same
 * provider, and `node copy` launches another like it. Sizes: docs/architecture.md,
 * "Member metadata".
 */
export const providersAnnouncement = new Announcement('providers', {
  [PROVIDER_KEY]: {
    schema: z.string().min(1).max(64),
    maxBytes: 80,
    about: 'the provider that launched it (`local`, `static`, `ec2`); absent when started by hand',
  },
  [HANDLE_KEY]: {
    schema: z.string().min(1).max(400).nullable(),
    maxBytes: 512,
    about: "the provider's name for it (local: its data folder; static: host:folder; ec2: instance id)",
  },
  tags: {
    schema: z.record(z.string().min(1).max(64), z.string().max(256)),
    maxBytes: 768,
    about: 'what `--tag key=value` gave it; copies keep them',
  },
})
export type ProvidersAnnouncement = Announced<typeof providersAnnouncement>
