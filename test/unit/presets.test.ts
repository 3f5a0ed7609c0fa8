import { readFileSync } from 'node:fs'
import { Command, type Option } from 'commander'
import { describe, expect, it } from 'vitest'
import { resolveAgentConfig } from '../../src/bootstrap/config.js'
import { addSetupCommands } from '../../src/cli/setup-commands.js'
import { ShoalError } from '../../src/shared/errors.js'
import {
  DEFAULT_PRESET,
  PRESET_TABLE,
  type PresetRow,
  type PresetSection,
  presetTimers,
  TIMER_PRESETS,
  type TimerPreset,
  withPresetDocs,
} from '../../src/shared/presets.js'

const read = (path: string) => readFileSync(new URL(`../../${path}`, import.meta.url), 'utf8')

/** Where each section's values arrive: the Init types whose fields carry the `@default` tags. */
const RECEIVERS: Record<PresetSection, { files: string[]; field: (key: string) => string }> = {
  membership: { files: ['src/membership/config.ts'], field: (key) => key },
  manager: { files: ['src/manager/manager.ts'], field: (key) => key },
  runtime: { files: ['src/runtime/supervisor.ts', 'src/runtime/runtime.ts'], field: (key) => key },
  mdns: {
    files: ['src/bootstrap/libp2p-node.ts'],
    field: (key) => `mdns${key[0]!.toUpperCase()}${key.slice(1)}`,
  },
}

/** 21600000 → "21_600_000", as the sources write numbers. */
const inSource = (n: number) => String(n).replace(/\B(?=(\d{3})+(?!\d))/g, '_')

/** The `@default` line of the doc comment right above `field:` in `source`, or null. */
function defaultTag(source: string, field: string): string | null {
  const match = new RegExp(`/\\*\\*((?:(?!\\*/)[\\s\\S])*)\\*/\\s*(?:readonly\\s+)?${field}\\??:`).exec(
    source,
  )
  return /@default (.*)/.exec(match?.[1] ?? '')?.[1]?.trim() ?? null
}

describe('timer presets (src/shared/presets.ts)', () => {
  it('docs/configuration.md shows the table as it is (else: npm run docs:presets)', () => {
    const page = read('docs/configuration.md')
    expect(page, 'docs/configuration.md is out of date: run npm run docs:presets').toBe(withPresetDocs(page))
  })

  it("every field of the subsystems' Init types carries the table's values in its @default tag", () => {
    const wrong: string[] = []
    for (const [section, rows] of Object.entries(PRESET_TABLE) as Array<
      [PresetSection, Record<string, PresetRow>]
    >) {
      const { files, field } = RECEIVERS[section]
      const source = files.map(read).join('\n')
      for (const [key, row] of Object.entries(rows)) {
        const wanted = `${inSource(row.lan)} (lan; cloud ${inSource(row.cloud)}, test ${inSource(row.test)})`
        const found = defaultTag(source, field(key))
        if (found !== wanted)
          wrong.push(`${files.join(' or ')}: ${field(key)}: @default ${found} ≠ ${wanted}`)
      }
    }
    expect(wrong).toEqual([])
  })

  it('gives every subsystem the values the presets have always had', () => {
    const lan = presetTimers('lan')
    expect(lan.membership).toMatchObject({ probeInterval: 500, probeTimeout: 300, suspicionMult: 2 })
    expect(lan.manager).toEqual({
      tickMs: 250,
      voterRemovalMs: 30_000,
      raftTickMs: 50,
      heartbeatTicks: 3,
      electionTicks: 10,
      formationWaitMs: 3000,
    })
    expect(lan.mdns).toEqual({ intervalMs: 2000 })
    expect(presetTimers('cloud').membership).toMatchObject({
      probeInterval: 1000,
      suspicionMult: 4,
      syncInterval: 30_000,
    })
    expect(presetTimers('test').runtime).toEqual({
      backoffBaseMs: 100,
      backoffMaxMs: 400,
      crashLoopLimit: 3,
      stableAfterMs: 2000,
      startTimeoutMs: 15_000,
      unhealthyAfter: 3,
      drainTimeoutMs: 5000,
    })
    // Fresh objects: a caller that changes its copy changes nobody else's.
    presetTimers('lan').membership.probeInterval = 1
    expect(presetTimers('lan').membership.probeInterval).toBe(500)
  })

  it("the agent's configuration takes each preset's membership and runtime values, overrides on top", () => {
    for (const preset of TIMER_PRESETS) {
      const config = resolveAgentConfig({ cluster: 'prod', preset })
      expect(config.timers).toEqual(presetTimers(preset).membership)
      expect(config.runtime).toMatchObject(presetTimers(preset).runtime)
      expect(config.runtime.unpack).toEqual({ maxBytes: 512 * 1024 * 1024, maxFiles: 10_000 })
    }
    const config = resolveAgentConfig({
      cluster: 'prod',
      preset: 'test',
      timers: { probeInterval: 200 },
      runtime: { drainTimeoutMs: 1 },
    })
    expect(config.timers.probeInterval).toBe(200)
    expect(config.timers.probeTimeout).toBe(150)
    expect(config.runtime.drainTimeoutMs).toBe(1)
    expect(resolveAgentConfig({ cluster: 'prod' }).preset).toBe(DEFAULT_PRESET)
    expect(() => resolveAgentConfig({ cluster: 'prod', preset: 'wan' as TimerPreset })).toThrow(ShoalError)
  })

  it('the --preset flag of `shoal agent` and `shoal lb` offers the presets of the table, lan by default', () => {
    const program = new Command()
    addSetupCommands(program)
    for (const name of ['agent', 'lb']) {
      const command = program.commands.find((c) => c.name() === name)!
      const option = command.options.find((o: Option) => o.long === '--preset')!
      expect(option.argChoices).toEqual([...TIMER_PRESETS])
      expect(option.defaultValue).toBe(DEFAULT_PRESET)
    }
  })
})
