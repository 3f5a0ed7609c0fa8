import { generateKeyPairSync } from 'node:crypto'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import {
  contentDigest,
  type Manifest,
  manifestDigest,
  parseManifest,
  signManifest,
  verifySignedManifest,
} from '../../src/artifacts/manifest.js'
import { keyId, signBytes, type TrustedKey } from '../../src/artifacts/signing.js'
import { canonicalJson } from '../../src/shared/canonical-json.js'
import {
  assertCoded,
  FUZZ_TIMEOUT_MS,
  FuzzTarget,
  type Json,
  jsonText,
  mutated,
  nested,
  outcome,
  randomBytes,
  thrown,
} from './harness.js'

/**
 * Manifests arrive from `POST /api/distributions` (JSON body) and from peers
 * (`/manifests/1.0.0`). Whatever the input: no crash, a refusal is
 * ERR_MANIFEST_INVALID or ERR_MANIFEST_SIGNATURE, and an accepted manifest is
 * exactly what was signed, so it still verifies wherever it travels next.
 */
const target = new FuzzTarget('manifest')
const CODES = ['ERR_MANIFEST_INVALID', 'ERR_MANIFEST_SIGNATURE']

const { privateKey, publicKey } = generateKeyPairSync('ed25519')
const trusted: TrustedKey[] = [{ id: keyId(publicKey), key: publicKey, file: 'fuzz.pub' }]
const hash = (c: string) => c.repeat(64)
const valid: Omit<Manifest, 'publisher'> = {
  schema: 1,
  name: 'educa',
  version: '1.0',
  artifacts: [
    {
      name: 'web.tgz',
      kind: 'component',
      sha256: hash('a'),
      size: 40_000,
      chunkSize: 16_384,
      chunks: [hash('b'), hash('c'), hash('d')],
      descriptor: { name: 'web', start: { node: 'server.mjs' }, http: true, health: { http: '/healthz' } },
    },
    {
      name: 'conf/app.json',
      kind: 'config',
      sha256: hash('e'),
      size: 10,
      chunkSize: 65_536,
      chunks: [hash('f')],
    },
  ],
  config: { greeting: 'hello', nested: { list: [1, 2, 3] } },
  placement: { web: 'all' },
  supersedes: '0.9',
  createdAt: '2026-11-25T10:00:00.000Z',
}
const signed = signManifest(valid, privateKey, publicKey)
const signedJson = JSON.parse(JSON.stringify(signed)) as Json

/** Signs `raw` as a publisher would (canonical JSON), or gives a bogus signature when it cannot be. */
function signRaw(raw: Json): string {
  try {
    return signBytes(privateKey, new TextEncoder().encode(canonicalJson(raw)))
  } catch {
    return 'AAAA'
  }
}

/** What an accepted manifest promises: it re-parses to itself, hashes, and still verifies after a JSON trip. */
function checkAccepted(manifest: Manifest, signature: string): void {
  expect(jsonText(parseManifest(manifest) as never)).toBe(jsonText(manifest as never))
  manifestDigest(manifest)
  contentDigest(manifest)
  const travelled = JSON.parse(JSON.stringify({ manifest, signature }))
  expect(canonicalJson(verifySignedManifest(travelled, trusted).manifest)).toBe(canonicalJson(manifest))
}

describe('manifest fuzzing', { timeout: FUZZ_TIMEOUT_MS }, () => {
  it('parseManifest: mutated manifests are accepted whole or refused with ERR_MANIFEST_INVALID', async () => {
    const manifest = signed.manifest as unknown as Json
    await target.check(
      fc.property(mutated(manifest), (input) => {
        const result = outcome(() => parseManifest(input), ['ERR_MANIFEST_INVALID'])
        if (result != null) {
          expect(jsonText(parseManifest(result.value) as never)).toBe(jsonText(result.value as never))
          canonicalJson(result.value)
        }
      }),
    )
  })

  it('verifySignedManifest: mutated envelopes are never accepted with altered content', async () => {
    const original = canonicalJson(signed.manifest)
    await target.check(
      fc.property(mutated(signedJson, { maxSteps: 2 }), (input) => {
        const result = outcome(() => verifySignedManifest(input, trusted), CODES)
        if (result != null) {
          // The signature covers the manifest: only the envelope may have changed.
          expect(canonicalJson(result.value.manifest)).toBe(original)
          checkAccepted(result.value.manifest, result.value.signature)
        }
      }),
    )
  })

  it('verifySignedManifest: mutated manifests signed by the trusted key verify wherever they travel', async () => {
    await target.check(
      fc.property(mutated(signed.manifest as unknown as Json), (manifest) => {
        const signature = signRaw(manifest)
        const result = outcome(() => verifySignedManifest({ manifest, signature }, trusted), CODES)
        if (result != null) checkAccepted(result.value.manifest, result.value.signature)
      }),
    )
  })

  it('verifySignedManifest: random JSON and bytes are refused with a code', async () => {
    await target.check(
      fc.property(randomBytes, (bytes) => {
        let input: unknown
        try {
          input = JSON.parse(new TextDecoder().decode(bytes))
        } catch {
          return
        }
        outcome(() => verifySignedManifest(input, trusted), CODES)
        outcome(() => verifySignedManifest({ manifest: input, signature: 'AAAA' }, trusted), CODES)
      }),
    )
  })

  describe('regressions (counterexamples the fuzzer found)', () => {
    it('refuses a config nested deeper than canonical JSON can write (was a RangeError)', () => {
      const manifest = { ...signed.manifest, config: { deep: nested(5000) } } as unknown as Json
      const input = JSON.parse(jsonText({ manifest, signature: 'AAAA' }))
      const err = thrown(() => verifySignedManifest(input, trusted))
      assertCoded(err, ['ERR_MANIFEST_INVALID'])
      assertCoded(
        thrown(() => parseManifest(JSON.parse(jsonText(manifest)))),
        ['ERR_MANIFEST_INVALID'],
      )
    })

    it('refuses a "__proto__" key, which the schema would drop after the signature covered it', () => {
      const manifest = JSON.parse(
        JSON.stringify(signed.manifest).replace('"config":{', '"config":{"__proto__":{"x":1},'),
      ) as Json
      const err = thrown(() => verifySignedManifest({ manifest, signature: signRaw(manifest) }, trusted))
      assertCoded(err, ['ERR_MANIFEST_INVALID'])
    })

    it('refuses a number JSON cannot carry (1e400 parses to Infinity; was a plain Error from canonical JSON)', () => {
      const manifest = JSON.parse(
        JSON.stringify(signed.manifest).replace('"greeting":"hello"', '"greeting":1e400'),
      )
      assertCoded(
        thrown(() => verifySignedManifest({ manifest, signature: 'AAAA' }, trusted)),
        ['ERR_MANIFEST_INVALID'],
      )
    })
  })
})
