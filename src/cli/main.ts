#!/usr/bin/env -S node --max-semi-space-size=1
// A 1 MiB young generation keeps an idle agent's memory ~20 MB lower (docs/decisions.md).
import { Command, Option } from 'commander'
import { VERSION } from '../shared/index.js'
import { addClusterCommands } from './cluster-commands.js'
import { COMMON_OPTIONS } from './command-options.js'
import { reportError } from './exit-codes.js'
import { DESCRIPTION, EPILOGUE } from './help.js'
import { addNodeCommands } from './node-commands.js'
import { addReleaseCommands } from './release-commands.js'
import { addRolloutCommands } from './rollout-commands.js'
import { addRunningCommands } from './running-commands.js'
import { addSetupCommands } from './setup-commands.js'
import { addVoterCommands } from './voter-commands.js'

/**
 * How a command shows in its parent's list: its arguments, or its verbs when it
 * only groups subcommands (`node add|copy|remove|list`, `secret new <file>`).
 */
function subcommandTerm(command: Command): string {
  const args = (c: Command) =>
    c.registeredArguments.map((a) => (a.required ? `<${a.name()}>` : `[${a.name()}]`)).join(' ')
  const subs = command.commands
  const term =
    command.registeredArguments.length > 0 || subs.length === 0
      ? `${command.name()} ${args(command)}`
      : subs.length === 1
        ? `${command.name()} ${subs[0]!.name()} ${args(subs[0]!)}`
        : `${command.name()} ${subs.map((c) => c.name()).join('|')}`
  return term.trimEnd()
}

/** `--json` on the command line (before any `--`): errors, usage errors included, come out as JSON. */
const json = (() => {
  const args = process.argv.slice(2)
  const end = args.indexOf('--')
  return (end === -1 ? args : args.slice(0, end)).includes('--json')
})()

// Settings made here, before any command exists, are inherited by every command.
const program = new Command()
  .name('shoal')
  .description(DESCRIPTION)
  .optionsGroup(COMMON_OPTIONS)
  .version(VERSION)
  // Root options only before the command: `publish --version 1.0` is the distribution's version.
  .enablePositionalOptions()
  // Commander's errors (exit code 1 by default) reach the one handler below, which makes them 2.
  .exitOverride()
  .configureOutput({
    // With --json the handler prints the error once, as JSON; help asked for still goes to stdout.
    writeErr: (text) => {
      if (!json) process.stderr.write(text)
    },
  })
  .configureHelp({ subcommandTerm })
  .addHelpOption(new Option('-h, --help', 'display help for command').helpGroup(COMMON_OPTIONS))
  .addHelpText('after', EPILOGUE)

program.commandsGroup('Cluster:')
addClusterCommands(program)
addVoterCommands(program)
program.commandsGroup('Releases:')
addReleaseCommands(program)
program.commandsGroup('Rollouts:')
addRolloutCommands(program)
program.commandsGroup('Nodes:')
addNodeCommands(program)
program.commandsGroup('Running:')
addRunningCommands(program)
program.commandsGroup('Setup:')
addSetupCommands(program)
program.helpCommand(true)

// The processes print JSON start lines of their own; --json makes their start errors JSON too.
for (const name of ['agent', 'lb']) {
  program.commands
    .find((c) => c.name() === name)
    ?.addOption(
      new Option('--json', 'a failed start as {"error":{"code","message"}} on stderr').helpGroup(
        COMMON_OPTIONS,
      ),
    )
}

// A usage error names the help to read rather than printing all of it.
const hint = (command: Command) => {
  const path: string[] = []
  for (let c: Command | null = command; c != null; c = c.parent) path.unshift(c.name())
  command.showHelpAfterError(`(run "${path.join(' ')} --help" for usage and examples)`)
  for (const sub of command.commands) hint(sub)
}
hint(program)

program.parseAsync(process.argv).catch((err: unknown) => {
  process.exit(reportError(err, json))
})
