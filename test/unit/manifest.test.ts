import { generateKeyPairSync } from 'node:crypto'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { type Manifest, signManifest, verifySignedManifest } from '../../src/artifacts/index.js'
import { keyId, type TrustedKey } from '../../src/artifacts/signing.js'

function keys() {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519')
  const trusted: TrustedKey = { id: keyId(publicKey), key: publicKey, file: 'test.pub' }
  return { privateKey, publicKey, trusted }
}

const hash = (c: string) => c.repeat(64)
const base: Omit<Manifest, 'publisher'> = {
  schema: 1,
  name: 'educa',
  version: '1.0',
  artifacts: [
    {
      name: 'web.tgz',
      kind: 'component',
      sha256: hash('a'),
      size: 100_000,
      chunkSize: 65_536,
      chunks: [hash('b'), hash('c')],
    },
    {
      name: 'conf/app.json',
      kind: 'config',
      sha256: hash('d'),
      size: 10,
      chunkSize: 65_536,
      chunks: [hash('e')],
    },
  ],
  config: { greeting: 'hello' },
  supersedes: null,
  createdAt: '2026-11-25T10:00:00.000Z',
}
const codeOf = (fn: () => unknown): string | undefined => {
  try {
    fn()
  } catch (err) {
    return (err as { code?: string }).code
  }
  return undefined
}

describe('signed manifests', () => {
  const { privateKey, publicKey, trusted } = keys()
  const signed = signManifest(base, privateKey, publicKey)

  it('verify with the trusted key and keep their content', () => {
    expect(verifySignedManifest(JSON.parse(JSON.stringify(signed)), [trusted]).manifest).toEqual(
      signed.manifest,
    )
  })

  it('are refused when unsigned, signed by an untrusted key, or when nobody is trusted', () => {
    expect(codeOf(() => verifySignedManifest({ manifest: signed.manifest }, [trusted]))).toBe(
      'ERR_MANIFEST_SIGNATURE',
    )
    const other = keys()
    const foreign = signManifest(base, other.privateKey, other.publicKey)
    expect(codeOf(() => verifySignedManifest(foreign, [trusted]))).toBe('ERR_MANIFEST_SIGNATURE')
    expect(codeOf(() => verifySignedManifest(signed, []))).toBe('ERR_MANIFEST_SIGNATURE')
  })

  it('are refused as forged when any field changes after signing (property)', () => {
    fc.assert(
      fc.property(
        fc.constantFrom('version', 'greeting', 'size', 'sha256', 'supersedes'),
        fc.string({ minLength: 1, maxLength: 8 }).filter((s) => /^[0-9A-Za-z]+$/.test(s)),
        (field, value) => {
          const copy = structuredClone(signed)
          const m = copy.manifest as Manifest & { artifacts: Array<{ size: number; sha256: string }> }
          if (field === 'version') m.version = `${m.version}${value}`
          if (field === 'greeting') m.config.greeting = `${String(m.config.greeting)}${value}`
          if (field === 'size') m.artifacts[1]!.size = 11 + value.length
          if (field === 'sha256')
            m.artifacts[0]!.sha256 = hash(value[0]!.toLowerCase().replace(/[^0-9a-f]/, 'f'))
          if (field === 'supersedes') m.supersedes = value
          if (JSON.stringify(copy) === JSON.stringify(signed)) return
          expect(codeOf(() => verifySignedManifest(copy, [trusted]))).toBe('ERR_MANIFEST_SIGNATURE')
        },
      ),
    )
  })

  it('are refused as invalid when malformed, before any signature check', () => {
    const cases: unknown[] = [
      null,
      { manifest: { name: 1 }, signature: 'x' },
      { manifest: { ...signed.manifest, schema: 2 }, signature: signed.signature },
      { manifest: { ...signed.manifest, artifacts: [] }, signature: signed.signature },
      { manifest: { ...signed.manifest, extra: true }, signature: signed.signature },
    ]
    for (const input of cases)
      expect(codeOf(() => verifySignedManifest(input, [trusted]))).toBe('ERR_MANIFEST_INVALID')
  })

  it('refuse artifact names that are absolute, escape the folder or are odd', () => {
    for (const name of ['../etc/passwd', 'a/../../b', '/abs', 'C:/x', 'a\\b', 'a//b', './a', '']) {
      const bad = { ...base, artifacts: [{ ...base.artifacts[0]!, name }] }
      expect(codeOf(() => signManifest(bad, privateKey, publicKey))).toBe('ERR_MANIFEST_INVALID')
    }
  })

  it('refuse chunk lists that do not match the size', () => {
    const bad = { ...base, artifacts: [{ ...base.artifacts[0]!, chunks: [hash('b')] }] }
    expect(codeOf(() => signManifest(bad, privateKey, publicKey))).toBe('ERR_MANIFEST_INVALID')
  })
})
