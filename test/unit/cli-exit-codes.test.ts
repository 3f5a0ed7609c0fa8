import { CommanderError, InvalidArgumentError } from 'commander'
import { describe, expect, it } from 'vitest'
import { ManifestInvalidError } from '../../src/artifacts/index.js'
import { identify } from '../../src/cli/client.js'
import { nodeCount, percent, secondsUpTo } from '../../src/cli/command-options.js'
import {
  AgentError,
  AgentUnreachableError,
  NodeOperationFailedError,
  NotAnAgentError,
  UsageError,
  WaitTimeoutError,
} from '../../src/cli/errors.js'
import { EXIT, errorObject, exitCodeOf } from '../../src/cli/exit-codes.js'
import { rolloutFailed } from '../../src/cli/rollout.js'
import { formatBytes } from '../../src/cli/table.js'
import type { RolloutView } from '../../src/manager/index.js'

const failedRollout = {
  id: 'r7',
  distribution: 'educa@1.1',
  state: 'rolled-back',
  reason: '1 node(s) failed',
  members: [
    { id: '12D3KooWabcdefgh', status: 'failed', distribution: null, phase: null, error: 'crash loop' },
  ],
  nodes: { total: 1, pending: 0, updating: 0, done: 0, failed: 1, reverted: 0, lost: 0 },
} as unknown as RolloutView

describe('CLI exit codes (docs/cli.md)', () => {
  it('maps each kind of failure to the code scripts branch on', () => {
    expect(exitCodeOf(new CommanderError(0, 'commander.helpDisplayed', '(outputHelp)'))).toBe(EXIT.ok)
    expect(exitCodeOf(new CommanderError(1, 'commander.unknownOption', "error: unknown option '--x'"))).toBe(
      2,
    )
    expect(exitCodeOf(new InvalidArgumentError('must be a whole number >= 1'))).toBe(2)
    expect(exitCodeOf(new UsageError('wants NAME@VERSION'))).toBe(2)
    expect(exitCodeOf(new AgentUnreachableError('http://127.0.0.1:7070', new Error('ECONNREFUSED')))).toBe(3)
    expect(exitCodeOf(new NotAnAgentError('http://127.0.0.1:8080', 'is not a Shoal agent'))).toBe(3)
    expect(exitCodeOf(new AgentError('ERR_UNAUTHORIZED', 'no token', 401))).toBe(4)
    expect(exitCodeOf(new AgentError('ERR_ROLLOUT_FINISHED', 'r3 is done', 409))).toBe(4)
    expect(exitCodeOf(new AgentError('ERR_NO_QUORUM', 'no quorum', 503))).toBe(5)
    expect(exitCodeOf(new WaitTimeoutError('not done after 600 s'))).toBe(6)
    expect(exitCodeOf(rolloutFailed(failedRollout))).toBe(1)
    expect(exitCodeOf(new NodeOperationFailedError('add failed'))).toBe(1)
    // Local failures that are not the agent's answer: a bad key file, a bad folder.
    expect(exitCodeOf(new ManifestInvalidError('no files'))).toBe(1)
    expect(exitCodeOf(Object.assign(new Error('ENOENT: no such file'), { code: 'ENOENT' }))).toBe(1)
  })

  it('prints errors in the API shape, with the rollout of a failed --wait', () => {
    expect(errorObject(new AgentError('ERR_NOT_FOUND', 'no rollout r9', 404))).toEqual({
      error: { code: 'ERR_NOT_FOUND', message: 'no rollout r9', status: 404 },
    })
    expect(
      errorObject(new CommanderError(1, 'commander.unknownOption', "error: unknown option '--x'")),
    ).toEqual({ error: { code: 'ERR_USAGE', message: "unknown option '--x'" } })
    const failed = errorObject(rolloutFailed(failedRollout)).error
    expect(failed).toMatchObject({ code: 'ERR_ROLLOUT_FAILED', rollout: { id: 'r7', state: 'rolled-back' } })
    expect(failed.message).toBe(
      'rollout r7 of educa@1.1 ended rolled-back: 1 node(s) failed; abcdefgh: crash loop',
    )
    expect(errorObject(Object.assign(new Error('ENOENT: x'), { code: 'ENOENT' })).error.code).toBe('ENOENT')
    expect(errorObject('odd').error).toEqual({ code: 'ERR_UNEXPECTED', message: 'odd' })
  })

  it('formats byte counts for people', () => {
    expect(formatBytes(0)).toBe('0 B')
    expect(formatBytes(1023)).toBe('1023 B')
    expect(formatBytes(3_000_100)).toBe('2.9 MiB')
  })
})

describe('what answers at --api (the probe before any token is sent)', () => {
  const json = (status: number, body: unknown) =>
    new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json' } })
  const answer = (response: Response, text: string) => identify(response, text)

  it('takes an agent by its own 404 or its browser guard', async () => {
    const notFound = { error: { code: 'ERR_NOT_FOUND', message: 'no such endpoint: GET /_shoal/lb' } }
    expect(answer(json(404, notFound), JSON.stringify(notFound))).toBeNull()
    const guard = { error: { code: 'ERR_FORBIDDEN_HOST', message: 'this API answers only to loopback…' } }
    expect(answer(json(403, guard), JSON.stringify(guard))).toBeNull()
  })

  it('names a load balancer, a metrics port, anything else', () => {
    const lb = { service: 'web', strategy: 'round-robin', backends: [] }
    expect(answer(json(200, lb), JSON.stringify(lb))).toBe(
      "is a Shoal load balancer's admin listener (service web), not an agent's API",
    )
    const locked = {
      error: { code: 'ERR_UNAUTHORIZED', message: "this load balancer's admin listener needs a token …" },
    }
    expect(answer(json(401, locked), JSON.stringify(locked))).toBe(
      "is a Shoal load balancer's admin listener, not an agent's API",
    )
    // Its public listener: whatever the application answered, marked by the proxy's Via.
    const proxied = new Response('<h1>Not found</h1>', {
      status: 404,
      headers: { 'content-type': 'text/html', via: '1.0 cache, 1.1 shoal-lb' },
    })
    expect(answer(proxied, '')).toBe(
      "is a Shoal load balancer (the application's address), not an agent's API",
    )
    const metrics = new Response('only GET /metrics is served here\n', {
      status: 404,
      headers: { 'content-type': 'text/plain' },
    })
    expect(answer(metrics, 'only GET /metrics is served here\n')).toMatch(/^is a Shoal metrics port/)
    const page = new Response('', { status: 200, headers: { 'content-type': 'text/html', server: 'nginx' } })
    expect(answer(page, '')).toBe(
      'is not a Shoal agent (GET /_shoal/lb answered HTTP 200 text/html from nginx)',
    )
    // An application's JSON 404 in another shape is not the agent's.
    expect(answer(json(404, { error: 'not found' }), '{"error":"not found"}')).toMatch(
      /^is not a Shoal agent/,
    )
  })
})

describe('numeric rollout flags', () => {
  it('--max-unavailable is N (>= 1) or P% (1-100%)', () => {
    expect(nodeCount('2')).toEqual({ maxUnavailable: 2 })
    expect(nodeCount('25%')).toEqual({ maxUnavailablePercent: 25 })
    expect(nodeCount('100%')).toEqual({ maxUnavailablePercent: 100 })
    for (const bad of ['0', '0%', '150%', '1.5', '-1', 'x', '%', '']) expect(nodeCount(bad)).toBeNull()
  })

  it('--canary is 1-100, --min-ready 0-3600 s', () => {
    expect(percent('20')).toBe(20)
    expect(percent('20%')).toBe(20)
    for (const bad of ['0', '101', '2.5', 'x']) expect(percent(bad)).toBeNull()
    expect(secondsUpTo(3600)('0.5')).toBe(500)
    expect(secondsUpTo(3600)('0')).toBe(0)
    for (const bad of ['3601', '-1', '1e3', 'x', '']) expect(secondsUpTo(3600)(bad)).toBeNull()
  })
})

describe('rollout states as people read them', () => {
  it('says a reason once, and an abort that was superseded as such', async () => {
    const { stateText } = await import('../../src/cli/views.js')
    expect(stateText('aborted', 'aborted')).toBe('aborted')
    expect(stateText('superseded', 'aborted')).toBe('superseded (after an abort)')
    expect(stateText('rolled-back', '1 node(s) failed (threshold 1)')).toBe(
      'rolled-back (1 node(s) failed (threshold 1))',
    )
    expect(stateText('done', null)).toBe('done')
  })
})
