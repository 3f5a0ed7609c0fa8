import { readdirSync, readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import * as api from '../../src/api/index.js'
import { HTTP_STATUS, httpStatusOf, httpStatusTable, TOO_LARGE } from '../../src/api/index.js'
import * as artifacts from '../../src/artifacts/index.js'
import * as loadbalancer from '../../src/loadbalancer/index.js'
import * as manager from '../../src/manager/index.js'
import * as membership from '../../src/membership/index.js'
import * as providers from '../../src/providers/index.js'
import * as runtime from '../../src/runtime/index.js'
import * as shared from '../../src/shared/index.js'
import {
  BadRequestError,
  errorClass,
  hasCode,
  INTERNAL,
  NotFoundError,
  RemoteError,
  ShoalError,
} from '../../src/shared/index.js'

/** The folders whose errors can reach the API, by name. */
const FOLDERS = { shared, membership, runtime, manager, artifacts, loadbalancer, providers, api }

/** Every named error class a folder's index.ts exports (a class with a static `code`). */
function namedClasses(exports: Record<string, unknown>): Array<{ name: string; code: string }> {
  return Object.entries(exports)
    .filter(
      ([, value]) =>
        typeof value === 'function' &&
        value.prototype instanceof ShoalError &&
        typeof (value as { code?: unknown }).code === 'string',
    )
    .map(([name, value]) => ({ name, code: (value as unknown as { code: string }).code }))
}

describe('one error model (docs/architecture.md, "Errors")', () => {
  it('a named class fixes its code, on the class and on each instance, and names itself', () => {
    class ExampleError extends errorClass('ERR_EXAMPLE') {}
    const err = new ExampleError('what happened; what to do', { cause: new Error('below') })
    expect(ExampleError.code).toBe('ERR_EXAMPLE')
    expect(err).toMatchObject({
      code: 'ERR_EXAMPLE',
      name: 'ExampleError',
      message: 'what happened; what to do',
    })
    expect(err).toBeInstanceOf(ShoalError)
    expect((err.cause as Error).message).toBe('below')
    expect(new manager.NotPausedError('r3')).toMatchObject({ code: 'ERR_NOT_PAUSED', name: 'NotPausedError' })
    expect(new membership.MetadataTooLargeError(null, 'too big').code).toBe('ERR_METADATA_TOO_LARGE')
  })

  it('every class exported by a folder the API serves has a row in the one table, and every row a class', () => {
    const codes = new Set<string>([INTERNAL, TOO_LARGE])
    const missing: string[] = []
    for (const [folder, exports] of Object.entries(FOLDERS))
      for (const { name, code } of namedClasses(exports as Record<string, unknown>)) {
        codes.add(code)
        if (!Object.hasOwn(HTTP_STATUS, code)) missing.push(`${folder}: ${name} (${code})`)
      }
    expect(missing).toEqual([])
    expect(Object.keys(HTTP_STATUS).filter((code) => !codes.has(code))).toEqual([])
  })

  it('the API answers an error with its code’s status, a remote one too, and 500 for the unnamed', () => {
    expect(httpStatusOf(new BadRequestError('x'))).toBe(400)
    expect(httpStatusOf(new artifacts.ManifestSignatureError('x'))).toBe(403)
    expect(httpStatusOf(new manager.NoQuorumError('x'))).toBe(503)
    expect(httpStatusOf(new RemoteError('ERR_ROLLOUT_FINISHED', 'r1 is done'))).toBe(409)
    expect(httpStatusOf(new Error('a bug'))).toBe(500)
  })

  it('a code from the wire is matched through its class, never its string', () => {
    const remote = new RemoteError('ERR_NOT_FOUND', 'no rollout r9')
    expect(hasCode(remote, NotFoundError)).toBe(true)
    expect(hasCode(remote, manager.NoQuorumError, NotFoundError)).toBe(true)
    expect(hasCode(remote, manager.NoQuorumError)).toBe(false)
    expect(hasCode(new Error('ERR_NOT_FOUND'), NotFoundError)).toBe(false)
  })

  it('docs/api.md shows the table as it is', () => {
    const page = readFileSync('docs/api.md', 'utf8')
    const block = /<!-- error table[^>]*-->\n([\s\S]*?)\n<!-- end of the error table -->/.exec(page)?.[1]
    expect(
      block,
      'docs/api.md is out of date with src/api/http-status.ts; put this between its markers',
    ).toBe(httpStatusTable())
  })

  it('nothing in src/ builds a coded error by hand or compares codes as strings', () => {
    const files = (dir: string): string[] =>
      readdirSync(dir).flatMap((name) => {
        const path = join(dir, name)
        return statSync(path).isDirectory() ? files(path) : path.endsWith('.ts') ? [path] : []
      })
    const checked = files('src')
    const found: string[] = []
    const patterns = [
      /new ShoalError\(/,
      /\bcode\s*[!=]==?\s*['"`]ERR_/,
      /['"`]ERR_[A-Z0-9_]+['"`]\s*[!=]==?/,
      /\[[^\]]*['"`]ERR_[A-Z0-9_]+['"`][^\]]*\]\.includes\(/,
      /\bcase\s+['"`]ERR_/,
    ]
    for (const file of checked)
      for (const [i, line] of readFileSync(file, 'utf8').split('\n').entries())
        if (!/^\s*(\*|\/\/)/.test(line) && patterns.some((p) => p.test(line)))
          found.push(`${file}:${i + 1}: ${line.trim()}`)
    expect(found).toEqual([])
  })
})
