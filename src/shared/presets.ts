/**
 * The timer presets: one table for every setting that a preset (`--preset
 * lan|cloud|test`) decides, in membership, the manager, the component runtime
 * and mDNS discovery. Each row holds its value per preset, its unit and the
 * formula or reason behind it.
 *
 * Subsystems never read this table. The agent's configuration
 * (src/bootstrap/config.ts) turns a preset into values with `presetTimers` and
 * hands each subsystem its share through its Init type (`MembershipInit.timers`,
 * `ManagerInit`, `RuntimeConfig`, `NodeInit.mdnsIntervalMs`), where every field
 * carries an `@default` tag that test/unit/presets.test.ts holds to this table.
 *
 * docs/configuration.md's "Timer presets" section is generated from this table by
 * `npm run docs:presets` (scripts/presets-doc.mjs); the same test fails while the
 * page differs from it. This file imports nothing, so that the script can load it
 * with Node's type stripping, without a build.
 */

export const TIMER_PRESETS = ['lan', 'cloud', 'test'] as const
export type TimerPreset = (typeof TIMER_PRESETS)[number]
/** What `shoal agent` runs with unless `--preset` says otherwise. */
export const DEFAULT_PRESET: TimerPreset = 'lan'

export function isTimerPreset(value: unknown): value is TimerPreset {
  return typeof value === 'string' && (TIMER_PRESETS as readonly string[]).includes(value)
}

/** One setting: its value in each preset, its unit and why it is that. */
export interface PresetRow {
  lan: number
  cloud: number
  test: number
  /** `ms`, or what a number counts (`members`, `crashes`, …); `×` for a multiplier. */
  unit: string
  /** The formula or the reason, as the documentation shows it. */
  why: string
}

export const PRESET_TABLE = {
  membership: {
    probeInterval: {
      lan: 500,
      cloud: 1_000,
      test: 100,
      unit: 'ms',
      why: "one member probed per interval (round-robin over a shuffled list), stretched by local health; `cloud` is memberlist's 1 s, `lan` halves it so that a dead member is known within ~2 s at N = 50 (the design's target is 3 s)",
    },
    probeTimeout: {
      lan: 300,
      cloud: 500,
      test: 150,
      unit: 'ms',
      why: 'direct ack deadline, stretched by local health; must stay below probeInterval × (awarenessMax + 1)',
    },
    connectTimeout: {
      lan: 1_000,
      cloud: 2_000,
      test: 500,
      unit: 'ms',
      why: "added to a probe's deadline when there is no connection yet (dial, noise and identify handshakes); indirect probes wait 2 × (probeTimeout + connectTimeout)",
    },
    indirectChecks: {
      lan: 3,
      cloud: 3,
      test: 3,
      unit: 'members',
      why: "SWIM's k: members asked to probe a target indirectly before it is suspected",
    },
    suspicionMult: {
      lan: 2,
      cloud: 4,
      test: 3,
      unit: '×',
      why: "minimum suspicion = suspicionMult × max(1, log10 N) × probeInterval (`lan`: 1 s at N = 10, 1.7 s at N = 50); `cloud` is memberlist's 4",
    },
    suspicionMaxTimeoutMult: {
      lan: 3,
      cloud: 6,
      test: 3,
      unit: '×',
      why: 'maximum suspicion = suspicionMaxTimeoutMult × minimum; shrinks to the minimum as independent confirmations arrive (Lifeguard)',
    },
    stallTolerance: {
      lan: 4_000,
      cloud: 8_000,
      test: 1_000,
      unit: 'ms',
      why: "floor of a suspicion's timeout while no observer saw the member's port closed (connection refused): a member whose event loop stalls (GC, a stopped or starved process) keeps its connections and refutes when it runs again; a crashed process's port refuses at once, and then the minimum above applies (`lan`: a 3 s stop is never a death, a SIGKILL is dead within ~2 s at N = 50)",
    },
    awarenessMax: {
      lan: 8,
      cloud: 8,
      test: 8,
      unit: 'score',
      why: 'local-health ceiling (Lifeguard): on a struggling node the probe interval and timeouts stretch up to (awarenessMax + 1) ×, so a slow prober does not accuse others',
    },
    syncInterval: {
      lan: 15_000,
      cloud: 30_000,
      test: 1_000,
      unit: 'ms',
      why: 'full state push/pull with one random member (anti-entropy), ±10 % jitter; the first 4 rounds after start run every 2 probe intervals',
    },
    joinRetryInterval: {
      lan: 2_000,
      cloud: 5_000,
      test: 200,
      unit: 'ms',
      why: 'the bootstrap list is dialled again this often while this node knows no other member',
    },
    reapTimeout: {
      lan: 60_000,
      cloud: 60_000,
      test: 3_000,
      unit: 'ms',
      why: 'a dead or left member stays in the view this long before it is forgotten',
    },
    leaveTimeout: {
      lan: 2_000,
      cloud: 2_000,
      test: 1_000,
      unit: 'ms',
      why: 'a graceful leave waits this long for peers to acknowledge it before shutting down',
    },
    reconnectInterval: {
      lan: 2_000,
      cloud: 5_000,
      test: 300,
      unit: 'ms',
      why: 'one member declared dead (not left), chosen at random, is dialled this often (±10 % jitter): after a split each side has declared the other dead, and without it the halves never merge again (Serf#605)',
    },
    reconnectTimeout: {
      lan: 6 * 3_600_000,
      cloud: 6 * 3_600_000,
      test: 120_000,
      unit: 'ms',
      why: 'a dead member stays on the reconnect list this long (6 h; Serf keeps 24 h, and a restarted node rejoins by itself)',
    },
  },
  manager: {
    tickMs: {
      lan: 250,
      cloud: 500,
      test: 100,
      unit: 'ms',
      why: 'the manager loop (elect, keep the voters, step the rollout, place components) runs this often and on every membership event; well below a failure-detection round, so the hand-over after a manager is declared dead costs one tick more',
    },
    voterRemovalMs: {
      lan: 30_000,
      cloud: 120_000,
      test: 5_000,
      unit: 'ms',
      why: 'a voter dead this long leaves the voting set, decided by a manager that sees a majority (a minority never shrinks the set to give itself quorum); outlasts a restart or a short partition',
    },
    raftTickMs: {
      lan: 50,
      cloud: 100,
      test: 100,
      unit: 'ms',
      why: 'one Raft tick: election timeouts and the lease count ticks, and the leader sends a heartbeat every `heartbeatTicks`; 50 ms with 10 ticks gives a 0.5–1 s election timeout, so a new leader acts within about 1 s of a crash (docs/manager.md)',
    },
    heartbeatTicks: {
      lan: 3,
      cloud: 3,
      test: 1,
      unit: 'ticks',
      why: "the leader's heartbeat goes out every this many ticks (lan: 150 ms, 3–7 per election timeout, as etcd's 100 ms against 1 s); each carries the leader's vote certificate (~460 bytes), and one per tick was half of an idle leader's CPU (9.5 % of a core at N = 10, 5.2 % at one per 150 ms)",
    },
    electionTicks: {
      lan: 10,
      cloud: 20,
      test: 10,
      unit: 'ticks',
      why: 'a follower that has not heard from the leader for a timeout drawn in [E, 2E) ticks starts an election (after a pre-vote); ten heartbeats per timeout, as etcd, so loss rarely deposes a leader; the leader lease is a little shorter (docs/raft.md)',
    },
    formationWaitMs: {
      lan: 3_000,
      cloud: 6_000,
      test: 1_000,
      unit: 'ms',
      why: 'a node alone, with no cluster state, waits this long after start before it founds a cluster by itself: enough to reach its bootstrap peers (or for mDNS to answer) and hear of an existing manager first',
    },
  },
  runtime: {
    backoffBaseMs: {
      lan: 500,
      cloud: 500,
      test: 100,
      unit: 'ms',
      why: "first restart delay after a crash, doubling after each crash in a row up to backoffMaxMs (as most supervisors do: systemd's RestartSec)",
    },
    backoffMaxMs: {
      lan: 30_000,
      cloud: 30_000,
      test: 400,
      unit: 'ms',
      why: "restart delay ceiling: quick first retries, no hot loop (Kubernetes' CrashLoopBackOff cap of 5 min is for fleets that can wait)",
    },
    crashLoopLimit: {
      lan: 5,
      cloud: 5,
      test: 3,
      unit: 'crashes',
      why: 'crashes in a row without a stable run that make a component `failed` instead of retried forever (`test`: a crash loop is known in about a second)',
    },
    stableAfterMs: {
      lan: 30_000,
      cloud: 30_000,
      test: 2_000,
      unit: 'ms',
      why: 'a run this long after ready resets the crash count',
    },
    startTimeoutMs: {
      lan: 60_000,
      cloud: 60_000,
      test: 15_000,
      unit: 'ms',
      why: "a start not healthy this long after spawn counts as a crash (a component's `startTimeoutMs` overrides it)",
    },
    unhealthyAfter: {
      lan: 3,
      cloud: 3,
      test: 3,
      unit: 'checks',
      why: 'failed health checks in a row that take a ready component out of rotation until a check passes; unhealthy for the start timeout, it is restarted',
    },
    drainTimeoutMs: {
      lan: 30_000,
      cloud: 30_000,
      test: 5_000,
      unit: 'ms',
      why: "longest wait for the load balancers' `drained` before a component is stopped anyway",
    },
  },
  mdns: {
    intervalMs: {
      lan: 2_000,
      cloud: 10_000,
      test: 250,
      unit: 'ms',
      why: 'between two mDNS queries; a LAN join should not wait long for the first answer',
    },
  },
} as const satisfies Record<string, Record<string, PresetRow>>

export type PresetSection = keyof typeof PRESET_TABLE
/** A section's values for one preset: its field names, each a number. */
export type PresetValues<S extends PresetSection> = {
  -readonly [K in keyof (typeof PRESET_TABLE)[S]]: number
}
export type PresetTimers = { [S in PresetSection]: PresetValues<S> }

/** Every section's values for one preset, as fresh plain objects. */
export function presetTimers(preset: TimerPreset): PresetTimers {
  const pick = <S extends PresetSection>(section: S): PresetValues<S> =>
    Object.fromEntries(
      Object.entries(PRESET_TABLE[section]).map(([field, row]) => [field, (row as PresetRow)[preset]]),
    ) as PresetValues<S>
  return {
    membership: pick('membership'),
    manager: pick('manager'),
    runtime: pick('runtime'),
    mdns: pick('mdns'),
  }
}

/** How docs/configuration.md introduces each section: where its values go, and notes. */
const SECTION_DOCS: Record<PresetSection, { title: string; receivedBy: string; note?: string }> = {
  membership: {
    title: 'Membership',
    receivedBy:
      '`MembershipInit.timers` (src/membership/config.ts); `AgentOptions.timers` overrides single fields',
    note:
      "The anchors are memberlist's LAN defaults (probe every 1 s, probe timeout 500 ms, k = 3, " +
      'suspicion = 4 × log10(N) × interval): they are the `cloud` preset. `lan` is faster to meet the ' +
      "design's detection target (a dead node known by all within 3 s at N = 50) and relies on " +
      "Lifeguard's local-health scaling against false positives. `test` shrinks the probe interval as " +
      "Serf's tests do.",
  },
  manager: { title: 'Manager', receivedBy: '`ManagerInit` (src/manager/manager.ts)' },
  runtime: {
    title: 'Runtime',
    receivedBy:
      '`RuntimeConfig` (src/runtime/runtime.ts, `SupervisorPolicy` in src/runtime/supervisor.ts); `AgentOptions.runtime` overrides single fields',
  },
  mdns: { title: 'mDNS', receivedBy: '`NodeInit.mdnsIntervalMs` (src/bootstrap/libp2p-node.ts)' },
}

/** The markers around the generated section of docs/configuration.md. */
export const PRESET_DOC_BEGIN =
  '<!-- BEGIN timer presets: generated from src/shared/presets.ts by `npm run docs:presets`; edit the table there, not here -->'
export const PRESET_DOC_END = '<!-- END timer presets -->'

/** The Markdown of the generated section, markers excluded. */
export function renderPresetDocs(): string {
  const lines = [
    `\`--preset ${TIMER_PRESETS.join('|')}\` (default \`${DEFAULT_PRESET}\`) picks one column of these tables for the`,
    "agent's membership, manager, runtime and mDNS discovery; `shoal lb` uses the membership and mDNS",
    'columns. The values are in src/shared/presets.ts, with their formulas.',
  ]
  for (const section of Object.keys(PRESET_TABLE) as PresetSection[]) {
    const docs = SECTION_DOCS[section]
    lines.push('', `### ${docs.title}`, '', `Given to ${docs.receivedBy}.`, '')
    lines.push(`| setting | ${TIMER_PRESETS.join(' | ')} | unit | formula / reason |`)
    lines.push(`|---|${TIMER_PRESETS.map(() => '---:|').join('')}---|---|`)
    for (const [field, row] of Object.entries(PRESET_TABLE[section]) as Array<[string, PresetRow]>) {
      const values = TIMER_PRESETS.map((preset) => formatNumber(row[preset]))
      lines.push(`| \`${field}\` | ${values.join(' | ')} | ${row.unit} | ${row.why.replaceAll('|', '\\|')} |`)
    }
    if (docs.note != null) lines.push('', docs.note)
  }
  return lines.join('\n')
}

/** `markdown` with its generated section replaced by the table's (an error when the markers are missing). */
export function withPresetDocs(markdown: string): string {
  const begin = markdown.indexOf(PRESET_DOC_BEGIN)
  const end = markdown.indexOf(PRESET_DOC_END)
  if (begin < 0 || end < begin) throw new Error(`no "${PRESET_DOC_BEGIN}" … "${PRESET_DOC_END}" section`)
  return `${markdown.slice(0, begin)}${PRESET_DOC_BEGIN}\n\n${renderPresetDocs()}\n\n${markdown.slice(end)}`
}

/** 21600000 → "21,600,000". */
function formatNumber(value: number): string {
  return String(value).replace(/\B(?=(\d{3})+(?!\d))/g, ',')
}
