import type { Logger } from '../shared/index.js'

/** Where to look for members on EC2 (`shoal agent --discover-ec2`). */
export interface Ec2DiscoveryInit {
  region: string
  endpoint?: string | null
}

/**
 * Members to join through, from EC2 instances tagged with the cluster (best
 * effort: a failure is logged). The AWS SDK is loaded only here, when asked for.
 */
export async function discoverOnEc2(
  where: Ec2DiscoveryInit,
  cluster: string,
  log: Logger,
): Promise<string[]> {
  try {
    const [{ EC2Client }, { discoverPeers }] = await Promise.all([
      import('@aws-sdk/client-ec2'),
      import('./ec2.js'),
    ])
    const client = new EC2Client({
      region: where.region,
      ...(where.endpoint == null ? {} : { endpoint: where.endpoint }),
    })
    const found = await discoverPeers(client, cluster)
    log.info('found members on EC2 by the cluster tag', { count: found.length })
    return found
  } catch (err) {
    log.warn('EC2 discovery failed; joining through --bootstrap only', { error: String(err) })
    return []
  }
}
