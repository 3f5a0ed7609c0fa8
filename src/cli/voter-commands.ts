import type { Command } from 'commander'
import type { VotersView } from '../manager/index.js'
import { apiClient } from './client.js'
import { type ClientOptions, clientOptions, examples, print, withParentOptions } from './command-options.js'
import { UsageError } from './errors.js'
import { formatVoters } from './views.js'

/** What `shoal voters reset --force` prints on stderr before it asks the agent. */
export const RESET_WARNING = `WARNING: shoal voters reset starts a new generation of the cluster's log
WARNING: with the addressed agent as its only voter (like etcd's --force-new-cluster).
WARNING: Decisions the lost majority committed that this agent had not applied are LOST.
WARNING: Use it only when a majority of the voters is gone for good and will not come
WARNING: back; every agent then follows the new generation, and voters are brought in again.
`

/** The manager's voters: who they are, and the way out when a majority of them is lost for good. */
export function addVoterCommands(program: Command): void {
  const voters = clientOptions(
    program
      .command('voters')
      .summary(
        "the manager's voters and learners (plain `shoal voters` lists them); reset when a majority is lost",
      )
      .description(
        "the manager's Raft configuration as the addressed agent sees it: leader, term, generation, commit index, " +
          'each voter and learner with its membership state and (asked of the leader) how far it holds the log',
      )
      .addHelpText(
        'after',
        examples(
          'shoal voters',
          'shoal voters --json | jq -r \'.members[] | select(.role == "voter") | .id\'',
          '# a majority of the voters is gone for good: the survivor starts a new generation',
          'shoal voters reset --force --api 10.0.0.7:7070',
        ),
      ),
  ).action(async (opts: ClientOptions) => {
    await list(opts)
  })

  clientOptions(
    voters
      .command('list')
      .description('the voters and learners (also: shoal voters)')
      .addHelpText('after', examples('shoal voters list --json')),
  ).action(async (own: ClientOptions, cmd: Command) => {
    await list(withParentOptions(cmd, own))
  })

  clientOptions(
    voters
      .command('reset')
      .description(
        "after a majority of the voters is lost for good: the addressed agent becomes the only voter of a new generation of the cluster's log; " +
          'decisions the lost majority committed that it had not applied are lost',
      )
      .option('--force', 'required: confirms that what the lost majority decided may be lost')
      .addHelpText(
        'after',
        `\nRun it on one surviving voter, and only once the others will not come back (like etcd's\n--force-new-cluster). The agents follow the new generation; voters are brought in again.\n${examples('shoal voters reset --force --api 10.0.0.7:7070')}`,
      ),
  ).action(async (own: ClientOptions & { force?: boolean }, cmd: Command) => {
    const opts = withParentOptions(cmd, own)
    if (!opts.force)
      throw new UsageError(
        "voters reset can lose committed decisions; add --force to do it (see 'shoal voters reset --help')",
      )
    process.stderr.write(RESET_WARNING)
    const view = await apiClient(opts).post<VotersView>('/api/voters/reset', { json: { force: true } })
    print(opts.json, view, () => formatVoters(view))
  })
}

async function list(opts: ClientOptions): Promise<void> {
  const view = await apiClient(opts).get<VotersView>('/api/voters')
  print(opts.json, view, () => formatVoters(view))
}
