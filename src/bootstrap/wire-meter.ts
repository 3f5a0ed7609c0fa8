import type { Metrics, MultiaddrConnection } from '@libp2p/interface'

/** Bytes this node moved over all its connections (after encryption: what the network carried). */
export interface WireTraffic {
  sentBytes: number
  receivedBytes: number
}

/**
 * A libp2p Metrics implementation that counts raw connection bytes and nothing
 * else: libp2p hands it every multiaddr connection, and the registrations other
 * components make are accepted and ignored. Cheaper than a full metrics stack.
 */
export function wireMeter(traffic: WireTraffic): () => Metrics {
  const ignored = new Proxy(
    {},
    {
      get: (_target, prop) => (prop === 'timer' ? () => () => {} : () => {}),
    },
  )
  const register = () => ignored
  return () =>
    ({
      trackMultiaddrConnection(maConn: MultiaddrConnection) {
        const sink = maConn.sink
        maConn.sink = async (source) => {
          await sink(
            (async function* () {
              for await (const chunk of source) {
                traffic.sentBytes += chunk.byteLength
                yield chunk
              }
            })(),
          )
        }
        const source = maConn.source
        maConn.source = (async function* () {
          for await (const chunk of source) {
            traffic.receivedBytes += chunk.byteLength
            yield chunk
          }
        })()
      },
      trackProtocolStream() {},
      registerMetric: register,
      registerMetricGroup: register,
      registerCounter: register,
      registerCounterGroup: register,
      registerHistogram: register,
      registerHistogramGroup: register,
      registerSummary: register,
      registerSummaryGroup: register,
      traceFunction: (_name: string, fn: unknown) => fn,
      createTrace: () => undefined,
    }) as unknown as Metrics
}
