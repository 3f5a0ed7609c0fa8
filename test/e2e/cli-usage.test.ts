import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { StatusView } from '../../src/api/index.js'
import type { DistributionView } from '../../src/artifacts/index.js'
import type { RolloutView } from '../../src/manager/index.js'
import { freePort } from '../../src/shared/ports.js'
import { type AgentProcess, type CliResult, runCli, spawnAgent } from '../helpers/processes.js'
import { waitFor } from '../helpers/wait.js'

/** What a script sees on stderr with --json when a command fails. */
function jsonError(result: CliResult): { code: string; message: string; status?: number } {
  const lines = result.stderr.trim().split('\n')
  expect(lines, result.stderr).toHaveLength(1)
  return JSON.parse(lines[0]!).error
}

describe('the shoal command line: verbs, aliases, --json, exit codes, help', () => {
  let dir: string
  let agent: AgentProcess
  let api: string
  /** `shoal ARGS --api AGENT`. */
  const shoal = (...args: string[]) => runCli([...args, '--api', api])
  const json = async <T>(...args: string[]): Promise<T> => {
    const result = await shoal(...args, '--json')
    expect(result.code, `shoal ${args.join(' ')}: ${result.stderr}`).toBe(0)
    return JSON.parse(result.stdout) as T
  }

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'shoal-e2e-usage-'))
    const made = await runCli(['key', 'new', join(dir, 'pub.key'), '--json'])
    expect(made.code, made.stderr).toBe(0)
    expect(JSON.parse(made.stdout)).toMatchObject({
      file: join(dir, 'pub.key'),
      publicFile: join(dir, 'pub.key.pub'),
    })
    for (const version of ['1.0', '1.1']) {
      await mkdir(join(dir, `app-${version}`))
      await writeFile(join(dir, `app-${version}`, 'version.txt'), `app ${version}\n`)
    }
    agent = await spawnAgent(
      [
        '--cluster',
        'e2e-usage',
        '--data',
        join(dir, 'agent'),
        '--listen',
        '/ip4/127.0.0.1/tcp/0',
        '--api',
        '127.0.0.1:0',
        '--no-mdns',
        '--preset',
        'test',
        '--trust',
        join(dir, 'pub.key.pub'),
      ],
      dir,
    )
    api = agent.info.api
    // Rollouts need the (single-node) manager to act.
    await waitFor('a manager with quorum', async () => {
      const status = await json<StatusView>('status')
      return status.manager != null && (status.managerStatus as { quorum?: boolean }).quorum === true
    })
  })

  afterAll(async () => {
    await agent?.stop('SIGKILL')
    await rm(dir, { recursive: true, force: true })
  })

  it('publish from a folder that does not exist: one line saying so, a code, nothing sent', async () => {
    const result = await shoal(
      'publish',
      join(dir, 'no-such-release'),
      '--name',
      'x',
      '--version',
      '1',
      '--key',
      join(dir, 'pub.key'),
      '--json',
    )
    expect(result.code).toBe(1)
    expect(jsonError(result)).toMatchObject({
      code: 'ERR_RELEASE_FOLDER',
      message: expect.stringContaining('no-such-release does not exist'),
    })
  })

  it('publish with a typo in the placement rules: refused before anything is uploaded, naming the rule', async () => {
    const folder = join(dir, 'typo-release')
    await mkdir(folder, { recursive: true })
    await writeFile(join(folder, 'notes.txt'), 'hello\n')
    await writeFile(
      join(folder, 'distribution.json'),
      JSON.stringify({ artifacts: { 'notes.txt': { kind: 'resource' } }, placement: { wbe: 'all' } }),
    )
    const result = await shoal(
      'publish',
      folder,
      '--name',
      'typo',
      '--version',
      '1',
      '--key',
      join(dir, 'pub.key'),
      '--json',
    )
    expect(result.code).not.toBe(0)
    expect(jsonError(result)).toMatchObject({
      code: 'ERR_MANIFEST_INVALID',
      message: expect.stringContaining('"wbe" is not a component'),
    })
    const listed = await shoal('distributions', '--json')
    expect((JSON.parse(listed.stdout) as Array<{ name: string }>).some((d) => d.name === 'typo')).toBe(false)
  })

  it('shoal --help teaches: groups, a workflow, env vars, exit codes; each command has examples', async () => {
    const help = await runCli(['--help'])
    expect(help.code).toBe(0)
    for (const heading of ['Cluster:', 'Releases:', 'Rollouts:', 'Nodes:', 'Running:', 'Setup:'])
      expect(help.stdout).toContain(`\n${heading}\n`)
    for (const text of [
      'SHOAL_API',
      'SHOAL_TOKEN',
      'Exit codes:',
      '$ shoal rollout educa@1.1',
      'node list|add',
    ])
      expect(help.stdout).toContain(text)
    const commands = [
      ['members'],
      ['status'],
      ['voters'],
      ['voters', 'reset'],
      ['publish'],
      ['distributions'],
      ['rollout'],
      ['rollout', 'status'],
      ['rollout', 'undo'],
      ['rollback'],
      ['node', 'add'],
      ['agent'],
    ]
    const helps = await Promise.all(commands.map((command) => runCli([...command, '--help'])))
    helps.forEach((result, i) => {
      expect(result.code, commands[i]!.join(' ')).toBe(0)
      expect(result.stdout, commands[i]!.join(' ')).toContain('Examples:\n  $ shoal ')
    })
  })

  it('usage errors exit 2, nothing is sent; with --json the error is JSON on stderr', async () => {
    const cases = [
      ['no-such-command'],
      ['members', '--no-such-flag'],
      ['rollout'],
      ['rollout', 'status'],
      ['rollout', 'educa'], // neither NAME@VERSION nor a rollout verb
      ['node', 'add', '--count', 'zero'],
      ['rollout', 'educa@1.0', '--max-unavailable', 'half'],
      ['voters', 'reset'], // without --force
    ]
    const results = await Promise.all(
      cases.map(async (args) => ({
        args,
        human: await shoal(...args),
        scripted: await shoal(...args, '--json'),
      })),
    )
    for (const { args, human, scripted } of results) {
      expect(human.code, args.join(' ')).toBe(2)
      expect(human.stderr).toMatch(/^error: /)
      expect(human.stdout).toBe('')
      expect(scripted.code, args.join(' ')).toBe(2)
      expect(jsonError(scripted).code).toBe('ERR_USAGE')
      expect(scripted.stdout).toBe('')
    }
  })

  it('an agent that does not answer exits 3', async () => {
    const nowhere = `http://127.0.0.1:${await freePort()}`
    const human = await runCli(['members', '--api', nowhere])
    expect(human.code).toBe(3)
    expect(human.stderr).toMatch(/^error: cannot reach an agent at .* \(ERR_AGENT_UNREACHABLE\)\n$/)
    const scripted = await runCli(['rollout', 'list', '--json'], { SHOAL_API: nowhere })
    expect(scripted.code).toBe(3)
    expect(jsonError(scripted).code).toBe('ERR_AGENT_UNREACHABLE')
  })

  it('requests the agent refuses exit 4 with its code; --json gives {"error":{"code","message"}}', async () => {
    const [undo, rollback, status, pause, history] = await Promise.all([
      shoal('rollout', 'undo', 'nothing', '--json'),
      shoal('rollback', 'nothing'),
      shoal('rollout', 'status', 'r999', '--json'),
      shoal('rollout', 'pause', 'r999'),
      shoal('history', 'nothing'),
    ])
    expect(undo.code).toBe(4)
    expect(jsonError(undo)).toMatchObject({
      code: 'ERR_NO_PREVIOUS',
      message: expect.stringContaining('nothing'),
    })
    expect(undo.stdout).toBe('')
    expect(rollback.code).toBe(4)
    expect(rollback.stderr).toMatch(/^error: .*\(ERR_NO_PREVIOUS\)\n$/)
    expect(status.code).toBe(4)
    expect(jsonError(status)).toMatchObject({ code: 'ERR_NOT_FOUND', status: 404 })
    expect(pause.code).toBe(4)
    expect(history.code).toBe(4)
    expect(history.stderr).toContain('ERR_UNKNOWN_DISTRIBUTION')
  })

  it('kubectl-style and flat verbs are the same commands', async () => {
    const [list, rollouts, nodeList, nodes, viaEnv] = await Promise.all([
      json('rollout', 'list'),
      json('rollouts'),
      json('node', 'list'),
      json('nodes'),
      runCli(['members', '--json'], { SHOAL_API: api }),
    ])
    expect(list).toEqual(rollouts)
    expect(nodeList).toEqual(nodes)
    expect(viaEnv.code).toBe(0)
    expect(JSON.parse(viaEnv.stdout)).toHaveLength(1)
  })

  it('publish, watch the transfer, roll out with --wait, follow, undo: rollout NAME@VERSION and its verbs both work', async () => {
    for (const version of ['1.0', '1.1']) {
      const published = await json<{ result: string; distribution: DistributionView }>(
        'publish',
        join(dir, `app-${version}`),
        '--name',
        'app',
        '--version',
        version,
        '--key',
        join(dir, 'pub.key'),
      )
      expect(published).toMatchObject({ result: 'added', distribution: { id: `app@${version}` } })
    }
    const held = await json<DistributionView[]>('distributions', 'app@1.1', '--watch', '--timeout', '20')
    expect(held).toMatchObject([{ id: 'app@1.1', complete: true }])

    const first = await json<RolloutView>('rollout', 'app@1.0', '--wait', '--timeout', '20')
    expect(first).toMatchObject({ distribution: 'app@1.0', state: 'done' })
    // Human output of --wait is a table, and a second rollout's id answers `rollout status ID`.
    const second = await shoal('rollout', 'app@1.1', '--wait', '--timeout', '20')
    expect(second.code, second.stderr).toBe(0)
    expect(second.stdout.split('\n')[0]).toMatch(/^ROLLOUT\s+KIND\s+FROM\s+TO\s+STRATEGY\s+STATE\s+NODES/)
    const id = /^(r\d+)\s/m.exec(second.stdout)?.[1]
    expect(id).toBeDefined()
    expect(await json<RolloutView>('rollout', 'status', id!)).toMatchObject({
      id,
      distribution: 'app@1.1',
      state: 'done',
    })
    expect(await json<RolloutView>('rollout', 'status', id!, '--watch')).toMatchObject({ id, state: 'done' })
    const history = await json<Array<{ id: string }>>('rollout', 'history', 'app')
    expect(history.map((v) => v.id)).toEqual(['app@1.0', 'app@1.1'])

    const undone = await json<RolloutView>('rollout', 'undo', 'app', '--wait', '--timeout', '20')
    expect(undone).toMatchObject({
      kind: 'rollback',
      from: 'app@1.1',
      distribution: 'app@1.0',
      state: 'done',
    })
    const list = await json<RolloutView[]>('rollout', 'list')
    expect(list.map((r) => r.kind)).toEqual(['rollback', 'rollout', 'rollout'])
    // Controlling a finished rollout is a conflict the agent refuses.
    const late = await shoal('rollout', 'abort', undone.id, '--json')
    expect(late.code).toBe(4)
    expect(jsonError(late).code).toBe('ERR_ROLLOUT_FINISHED')
  })
})
