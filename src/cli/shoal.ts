#!/usr/bin/env -S node --max-semi-space-size=1
// The `shoal` command ("bin" in package.json). It imports nothing of the app
// statically: ESM runs every static import before the module's own code, so on
// an old Node the app would fail (Promise.withResolvers, in libp2p) before this
// check could say why. The young-generation flag is main.ts's (docs/decisions.md).

/** The oldest Node.js major that runs Shoal (package.json "engines"; libp2p 2.x needs it). */
const NODE_MAJOR = 22

const running = process.versions.node
if (Number(running.split('.')[0]) < NODE_MAJOR) {
  process.stderr.write(
    `error: Shoal needs Node.js ${NODE_MAJOR} or newer (this is v${running}, ${process.execPath}). ` +
      'From a checkout, run it with npx shoal … (npm ci installs Node 24 as a dev dependency); ' +
      `elsewhere install Node.js ${NODE_MAJOR} or newer and put it first on the PATH.\n`,
  )
  process.exit(1)
}

await import('./main.js')
