import { randomBytes } from 'node:crypto'
import { access, open, rename } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { FileExistsError } from './errors.js'

/** Writes a file so that a crash leaves the old content or the new, never a mix. */
export async function writeFileAtomic(file: string, data: Uint8Array | string, mode = 0o644): Promise<void> {
  const temp = join(dirname(file), `.${randomBytes(6).toString('hex')}.tmp`)
  const handle = await open(temp, 'wx', mode)
  try {
    await handle.writeFile(data)
    await handle.sync()
  } finally {
    await handle.close()
  }
  await rename(temp, file)
}

/** Refuses to go on if any of `paths` exists: keys and secrets are never overwritten. */
export async function refuseExisting(...paths: string[]): Promise<void> {
  for (const path of paths) {
    const exists = await access(path).then(
      () => true,
      () => false,
    )
    if (exists) throw new FileExistsError(path)
  }
}
