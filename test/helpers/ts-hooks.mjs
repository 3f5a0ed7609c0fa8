// Lets plain Node run this repository's TypeScript in a child process:
//   node --experimental-transform-types --no-warnings --import ./test/helpers/ts-hooks.mjs FILE.ts
// Node strips the types; this hook maps a relative `./x.js` import from a .ts file
// to `./x.ts` (the sources import by their compiled names, as NodeNext wants).
import { existsSync } from 'node:fs'
import { registerHooks } from 'node:module'
import { fileURLToPath } from 'node:url'

registerHooks({
  resolve(specifier, context, nextResolve) {
    if (specifier.startsWith('.') && specifier.endsWith('.js') && context.parentURL?.endsWith('.ts')) {
      const ts = new URL(`${specifier.slice(0, -3)}.ts`, context.parentURL)
      if (existsSync(fileURLToPath(ts))) return nextResolve(ts.href, context)
    }
    return nextResolve(specifier, context)
  },
})
