/**
 * Regressions found by the kill campaign (`npm run chaos -- kill`, bench/chaos/,
 * docs/reliability-chaos.md): each test names the trial that found the bug.
 */
import { mkdir, readdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { TestCluster } from '../helpers/cluster.js'

describe('regressions found by the kill campaign', () => {
  let cluster: TestCluster
  afterEach(async () => {
    await cluster.cleanup()
  })

  // Kill campaign seed 4 (phase install): an agent killed while it unpacked a component
  // left `components/NAME/VERSION-SHA12.tmp-HEX12` behind for ever: nothing removed it,
  // and every later install picks a fresh temp name.
  it('an agent restarted after a kill mid-install removes the temp folders the killed run left', async () => {
    cluster = new TestCluster()
    const data = await cluster.dataDir()
    const web = join(data, 'components', 'web')
    const unfinished = join(web, '1.0-0123456789ab.tmp-a1b2c3d4e5f6')
    await mkdir(join(unfinished, 'node_modules', 'pkg'), { recursive: true })
    await writeFile(join(unfinished, 'node_modules', 'pkg', 'index.js'), 'half written')
    // A finished install and a version that merely looks odd stay.
    await mkdir(join(web, '1.0-0123456789ab'))
    await mkdir(join(web, '2.tmp-ffffffffffff'))
    const configs = join(data, 'configs')
    await mkdir(join(configs, 'educa@1.0~tmp-4242'), { recursive: true })
    // Since two installs of one version may run at once, each temp name also has a random part.
    await mkdir(join(configs, 'educa@1.1~tmp-4242-0a1b2c3d'), { recursive: true })
    await mkdir(join(configs, 'educa@1.0'))

    await cluster.start({ dataDir: data })

    expect((await readdir(web)).sort()).toEqual(['1.0-0123456789ab', '2.tmp-ffffffffffff'])
    expect(await readdir(configs)).toEqual(['educa@1.0'])
  })
})
