import type { Command } from 'commander'
import type { RuntimeStatus } from '../runtime/index.js'
import { apiClient } from './client.js'
import { type ClientOptions, clientOptions, examples, print } from './command-options.js'
import { formatComponents } from './views.js'

/** Running: the components an agent runs and their output. */
export function addRunningCommands(program: Command): void {
  clientOptions(
    program
      .command('components')
      .description("the addressed agent's components: version, state, endpoint, restarts")
      .addHelpText('after', examples('shoal components', 'shoal components --api 10.0.0.6:7070 --json')),
  ).action(async (opts: ClientOptions) => {
    const status = await apiClient(opts).get<RuntimeStatus>('/api/components')
    print(opts.json, status, () => formatComponents(status))
  })

  clientOptions(
    program
      .command('logs')
      .argument('<component>', 'component name')
      .description("a component's output on the addressed agent")
      .option('-f, --follow', 'keep printing new output')
      .option('-n, --lines <n>', 'lines of history', (v) => Number(v), 100)
      .addHelpText('after', examples('shoal logs web', 'shoal logs web -f -n 20 --api 10.0.0.6:7070')),
    { json: false },
  ).action(async (component: string, opts: ClientOptions & { lines: number; follow?: boolean }) => {
    const { printLogs } = await import('./logs.js')
    await printLogs(apiClient(opts), component, opts.lines, Boolean(opts.follow))
  })
}
