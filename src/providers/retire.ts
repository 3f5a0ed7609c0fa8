import { peerIdFromString } from '@libp2p/peer-id'
import { z } from 'zod'
import type { Logger, Startable, StreamNetwork } from '../shared/index.js'
import { decodeJson, encodeJson, exchange, serve } from '../shared/index.js'
import { RETIRE_ASK_TIMEOUT_MS, RETIRE_MAX_BYTES, RETIRE_SERVE_TIMEOUT_MS } from './constants.js'

const retireRequest = z.strictObject({ op: z.literal('retire') })

export interface RetireInit {
  cluster: string
}

export interface RetireComponents {
  network: StreamNetwork
  logger: Logger
}

/**
 * The retire protocol, `/shoal/<cluster>/node/1.0.0`, by which `shoal node remove`
 * run on any agent has a member leave for good:
 *
 * 1. the asking agent dials the member and writes `{"op":"retire"}` (`ask`);
 * 2. the member acknowledges with `{"ok":true}` and, once the answer is out,
 *    resolves `requested`: its owner (the agent) drains, leaves and stops;
 * 3. the asking agent waits for the member to have left (node operations).
 */
export class Retirement implements Startable {
  /** Resolves once another agent asked this one to retire; `by` is who asked. */
  readonly requested: Promise<{ by: string }>
  private markRequested: (asker: { by: string }) => void = () => {}
  private readonly protocol: string
  private readonly log: Logger
  private serving = false

  constructor(
    init: RetireInit,
    private readonly components: RetireComponents,
  ) {
    this.protocol = `/shoal/${init.cluster}/node/1.0.0`
    this.log = components.logger.child('retire')
    this.requested = new Promise((resolve) => {
      this.markRequested = resolve
    })
  }

  async start(): Promise<void> {
    if (this.serving) return
    this.serving = true
    await serve(
      this.components.network,
      this.protocol,
      { timeoutMs: RETIRE_SERVE_TIMEOUT_MS, maxBytes: RETIRE_MAX_BYTES },
      this.log,
      async (ch, connection) => {
        decodeJson(retireRequest, await ch.read(), 'node request')
        await ch.write(encodeJson({ ok: true }))
        const by = connection.remotePeer.toString()
        this.log.info('asked to retire: draining, leaving and stopping', { by })
        // After this exchange has closed: the stop that follows closes every stream.
        setTimeout(() => this.markRequested({ by }), 0)
      },
    )
  }

  async stop(): Promise<void> {
    if (!this.serving) return
    this.serving = false
    await this.components.network.unhandle(this.protocol).catch(() => {})
  }

  /** Asks member `id` to retire (drain, leave, stop) and waits for its acknowledgement. */
  async ask(id: string): Promise<void> {
    await exchange(
      this.components.network,
      peerIdFromString(id),
      this.protocol,
      { timeoutMs: RETIRE_ASK_TIMEOUT_MS, maxBytes: RETIRE_MAX_BYTES },
      async (ch) => {
        await ch.write(encodeJson({ op: 'retire' }))
        await ch.read()
      },
    )
  }
}
