import { Readable } from 'node:stream'
import { SingleBar } from 'cli-progress'
import {
  ArtifactMissingError,
  type DistributionView,
  type PublishResult,
  type PublishTarget,
  publishRelease,
  readPrivateKey,
} from '../artifacts/index.js'
import { hasCode } from '../shared/index.js'
import type { ApiClient } from './client.js'
import { formatBytes } from './table.js'

export type { PublishResult } from '../artifacts/index.js'

export interface PublishOptions {
  dir: string
  name: string
  version: string
  keyFile: string
  chunkSize?: number
  /** Show a progress bar on stderr (when it is a terminal). */
  progress: boolean
  /**
   * Apply the distribution rules before uploading (default true). False publishes
   * what an older shoal would; the agent then refuses it itself.
   */
  preflight?: boolean
}

/**
 * `shoal publish`: signs the release locally with the key and publishes it
 * through the addressed agent's API (src/artifacts/publisher.ts does the work).
 */
export async function publish(client: ApiClient, options: PublishOptions): Promise<PublishResult> {
  const key = await readPrivateKey(options.keyFile)
  const bar = options.progress && process.stderr.isTTY ? new UploadBar() : null
  try {
    return await publishRelease(agentOverHttp(client), {
      dir: options.dir,
      name: options.name,
      version: options.version,
      key,
      ...(options.chunkSize == null ? {} : { chunkSize: options.chunkSize }),
      ...(options.preflight == null ? {} : { preflight: options.preflight }),
      ...(bar == null ? {} : { onProgress: (progress) => bar.show(progress) }),
    })
  } finally {
    bar?.stop()
  }
}

/** The upload's progress bar on stderr, started at the first report (when the total is known). */
class UploadBar {
  private bar: SingleBar | null = null

  show({ sent, total, file }: { sent: number; total: number; file: string }): void {
    if (this.bar == null) {
      this.bar = new SingleBar({
        stream: process.stderr,
        format: 'uploading [{bar}] {percentage}% | {sent} of {size} | {file}',
        hideCursor: true,
      })
      this.bar.start(total, sent, { file, sent: formatBytes(sent), size: formatBytes(total) })
    } else this.bar.update(sent, { file, sent: formatBytes(sent) })
  }

  stop(): void {
    this.bar?.stop()
  }
}

/** An agent as the publisher sees it, through its HTTP API. */
function agentOverHttp(client: ApiClient): PublishTarget {
  return {
    versions: async (name) =>
      ((await client.find<DistributionView[]>(`/api/distributions/${encodeURIComponent(name)}`)) ?? []).map(
        (v) => v.version,
      ),
    holds: async (sha256) => (await client.find(`/api/artifacts/${sha256}`)) != null,
    upload: async (artifact, bytes) => {
      await client.post(`/api/artifacts?sha256=${artifact.sha256}`, {
        body: Readable.toWeb(bytes) as ReadableStream<Uint8Array>,
        timeoutMs: 60 * 60_000,
      })
    },
    // The manifest is posted before its artifacts: missing artifacts is the answer that means accepted.
    offer: async (signed) => {
      try {
        await client.post('/api/distributions', { json: signed })
      } catch (err) {
        if (hasCode(err, ArtifactMissingError)) return
        throw err
      }
    },
    publish: (signed) => client.post('/api/distributions', { json: signed }),
  }
}
