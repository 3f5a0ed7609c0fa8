import { randomBytes } from 'node:crypto'
import { mkdir, writeFile } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { writeNewKeyPair } from '../../src/artifacts/index.js'

/** A signing key pair in `dir`: `{ key, pub }` file paths. */
export async function makeKey(dir: string, name = 'publisher.key'): Promise<{ key: string; pub: string }> {
  const key = join(dir, name)
  const { publicFile } = await writeNewKeyPair(key)
  return { key, pub: publicFile }
}

/** A folder to publish: files of random bytes (name → size) and an optional distribution.json. */
export async function makeDistributionDir(
  dir: string,
  files: Record<string, number>,
  description?: unknown,
): Promise<string> {
  await mkdir(dir, { recursive: true })
  for (const [name, size] of Object.entries(files)) {
    await mkdir(dirname(join(dir, name)), { recursive: true })
    await writeFile(join(dir, name), randomBytes(size))
  }
  if (description != null) await writeFile(join(dir, 'distribution.json'), JSON.stringify(description))
  return dir
}
