import type { Command } from 'commander'
import type { MemberView, StatusView } from '../api/index.js'
import { apiClient } from './client.js'
import { type ClientOptions, clientOptions, examples, print } from './command-options.js'
import { formatMembers, formatStatus } from './views.js'

/** Cluster: who is in it and what the addressed agent sees. */
export function addClusterCommands(program: Command): void {
  clientOptions(
    program
      .command('members')
      .summary('the membership view: state, readiness, what each member runs')
      .description(
        "the addressed agent's membership view: every member's state (alive, suspect, dead, left), readiness, distribution and components",
      )
      .addHelpText(
        'after',
        examples(
          'shoal members',
          'shoal members --api 10.0.0.5:7070 --json',
          `shoal members --json | jq -r '.[] | select(.state != "alive") | .id'`,
        ),
      ),
  ).action(async (opts: ClientOptions) => {
    const members = await apiClient(opts).get<MemberView[]>('/api/members')
    print(opts.json, members, () => formatMembers(members))
  })

  clientOptions(
    program
      .command('status')
      .description('this node, the manager and quorum, the active distribution, rollouts')
      .addHelpText(
        'after',
        examples('shoal status', `shoal status --json | jq '{manager, distribution, members}'`),
      ),
  ).action(async (opts: ClientOptions) => {
    const client = apiClient(opts)
    const status = await client.get<StatusView>('/api/status')
    // People read nodes and load balancers apart, which needs each member's roles.
    const members = opts.json ? [] : await client.get<MemberView[]>('/api/members')
    print(opts.json, status, () => formatStatus(status, members))
  })
}
