import { EXIT_CODES_HELP } from './exit-codes.js'

/** What `shoal --help` says before the command list. */
export const DESCRIPTION = `Shoal: peer-to-peer cluster membership and deployment.

Agents on each machine find each other (SWIM gossip over libp2p), share signed
releases peer to peer, elect a manager and roll new versions out across the
cluster. Every other command talks to one agent's admin API.`

/** What `shoal --help` says after the command list: the workflow, addressing, output, exit codes. */
export const EPILOGUE = `
A first cluster:
  $ shoal secret new cluster.secret                # once; copy it to every node
  $ shoal key new publisher.key                    # once per publisher
  $ shoal agent --cluster prod --secret-file cluster.secret --trust publisher.key.pub
  $ shoal members                                  # who is in, alive, ready
  $ shoal publish ./build --name educa --version 1.1 --key publisher.key
  $ shoal rollout educa@1.1 --strategy rolling --wait
  $ shoal rollout list                             # or: shoal rollouts
  $ shoal rollout undo educa                       # or: shoal rollback educa
  $ shoal demo                                     # all of this on one machine

Addressing an agent (every command but agent, lb, demo, secret, key):
  --api URL       or SHOAL_API     default http://127.0.0.1:7070; HOST:PORT works too
  --token TOKEN   or SHOAL_TOKEN   for agents started with --tokens

Output:
  Tables for people by default. --json prints JSON on stdout instead (the
  contract scripts rely on; docs/cli.md); errors then come as one line
  {"error":{"code","message"}} on stderr. Progress bars go to stderr, only on
  a terminal and never with --json.

${EXIT_CODES_HELP}

Run "shoal COMMAND --help" for a command's options and examples.`
