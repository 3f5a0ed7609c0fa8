import { mkdir, mkdtemp, readdir, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import * as tar from 'tar'

/** A gzip'd component package holding `files` (name → content) at its root. */
export async function makePackage(file: string, files: Record<string, string>): Promise<string> {
  const staging = await mkdtemp(join(tmpdir(), 'shoal-pkg-'))
  for (const [name, content] of Object.entries(files)) await writeFile(join(staging, name), content)
  await tar.c({ gzip: true, file, cwd: staging, portable: true }, (await readdir(staging)).sort())
  return file
}

/** A publishable folder with one component package per entry, plus a distribution.json. */
export async function makeComponentDistribution(
  dir: string,
  components: Record<string, { files: Record<string, string>; descriptor: Record<string, unknown> }>,
  config: Record<string, unknown> = {},
): Promise<string> {
  await mkdir(dir, { recursive: true })
  const artifacts: Record<string, unknown> = {}
  for (const [name, { files, descriptor }] of Object.entries(components)) {
    await makePackage(join(dir, `${name}.tgz`), files)
    artifacts[`${name}.tgz`] = { kind: 'component', descriptor: { name, ...descriptor } }
  }
  await writeFile(join(dir, 'distribution.json'), JSON.stringify({ artifacts, config }))
  return dir
}
