/**
 * `shoal` on a Node.js too old for it says so in one line, instead of failing
 * inside libp2p with "Promise.withResolvers is not a function". Run with the
 * oldest `node` found on the PATH (the machine's own, where npm ci's Node 24 is
 * first on the PATH during tests).
 */
import { execFile, execFileSync } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { delimiter, join, resolve } from 'node:path'
import { describe, expect, it } from 'vitest'
import { VERSION } from '../../src/shared/version.js'
import { skipReason } from '../helpers/skip.js'

const ROOT = resolve(import.meta.dirname, '../..')
const BIN = join(ROOT, 'dist/src/cli/shoal.js')

/** Every `node` on the PATH older than Node 22, first found first. */
function oldNodes(): Array<{ path: string; version: string }> {
  const found: Array<{ path: string; version: string }> = []
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    const path = join(dir, 'node')
    if (dir === '' || !existsSync(path)) continue
    try {
      const version = execFileSync(path, ['--version'], { encoding: 'utf8', timeout: 10_000 }).trim()
      if (Number(/^v(\d+)\./.exec(version)?.[1]) < 22 && !found.some((n) => n.version === version))
        found.push({ path, version })
    } catch {
      // Not runnable here: not a Node to test with.
    }
  }
  return found
}

function run(node: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((done) => {
    execFile(node, [BIN, ...args], { timeout: 30_000 }, (err, stdout, stderr) => {
      done({ code: err == null ? 0 : typeof err.code === 'number' ? err.code : 1, stdout, stderr })
    })
  })
}

const unbuilt = existsSync(BIN) ? null : `${BIN} is missing (run npm run build)`
const old = oldNodes()[0]
const noOldNode = skipReason(
  import.meta.url,
  'shoal on an old Node.js',
  unbuilt ?? (old == null ? 'no Node.js older than 22 is on the PATH' : null),
)

describe('the shoal command', () => {
  it('is the package\'s "bin", and runs the CLI on this Node', async () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
      bin: Record<string, string>
    }
    expect(pkg.bin).toEqual({ shoal: 'dist/src/cli/shoal.js' })
    if (unbuilt != null) return
    const result = await run(process.execPath, ['--version'])
    expect(result).toMatchObject({ code: 0, stdout: `${VERSION}\n` })
  })
})

describe.skipIf(noOldNode != null)('shoal on an old Node.js', () => {
  it.each([
    ['--help'],
    ['agent', '--cluster', 'old-node', '--api', '127.0.0.1:0', '--listen', '/ip4/127.0.0.1/tcp/0'],
  ])('says in one line which Node it needs and how to get it: shoal %s', async (...args) => {
    const result = await run(old!.path, args)
    expect(result.code).not.toBe(0)
    expect(result.stdout).toBe('')
    expect(result.stderr).toBe(
      `error: Shoal needs Node.js 22 or newer (this is ${old!.version}, ${realNode(old!.path)}). ` +
        'From a checkout, run it with npx shoal … (npm ci installs Node 24 as a dev dependency); ' +
        'elsewhere install Node.js 22 or newer and put it first on the PATH.\n',
    )
  })
})

/** process.execPath as the old node reports it (a symlink on the PATH resolves to its target). */
function realNode(path: string): string {
  return execFileSync(path, ['-p', 'process.execPath'], { encoding: 'utf8' }).trim()
}
