import { createPrivateKey } from 'node:crypto'
import { readdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'

/** A secret and the spellings it could leak in. */
export interface Secret {
  name: string
  forms: string[]
}

/** A cluster secret file: the whole file, its hex key (either case), the key bytes in base64. */
export function swarmKeyForms(name: string, file: Uint8Array): Secret {
  const text = new TextDecoder().decode(file)
  const hex = text.trim().split('\n').at(-1)!
  const bytes = Buffer.from(hex, 'hex')
  return {
    name,
    forms: [text, hex, hex.toUpperCase(), bytes.toString('base64'), bytes.toString('base64url')],
  }
}

/** A PKCS#8 PEM private key: the PEM, each base64 line of its body, and the raw ed25519 seed. */
export function privateKeyForms(name: string, pem: string): Secret {
  const body = pem.split('\n').filter((line) => line !== '' && !line.startsWith('-----'))
  const seed = createPrivateKey(pem).export({ format: 'jwk' }).d!
  const raw = Buffer.from(seed, 'base64url')
  return { name, forms: [pem, body.join(''), ...body, seed, raw.toString('base64'), raw.toString('hex')] }
}

/** Where each secret shows up in `text`, as "secret in where" lines (empty: nowhere). */
export function leaks(where: string, text: string, secrets: Secret[]): string[] {
  const found: string[] = []
  for (const secret of secrets)
    for (const form of secret.forms) if (text.includes(form)) found.push(`${secret.name} in ${where}`)
  return [...new Set(found)]
}

/** Every file under `dir` (recursively) but those `skip` names, as latin1 text by relative path. */
export async function filesUnder(dir: string, skip: (path: string) => boolean): Promise<Map<string, string>> {
  const out = new Map<string, string>()
  for (const entry of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue
    const path = join(entry.parentPath, entry.name)
    const relative = path.slice(dir.length + 1)
    if (skip(relative)) continue
    out.set(relative, await readFile(path, 'latin1').catch(() => ''))
  }
  return out
}
