// The Shoal dashboard: one live snapshot from /api/events (server-sent events,
// read through fetch so the token travels in a header, never in a URL), and
// forms and buttons that call the same JSON API as the CLI.

const TOKEN_KEY = 'shoal-token'
const FINISHED = new Set(['done', 'failed', 'rolled-back', 'aborted', 'superseded'])
const $ = (id) => document.getElementById(id)

let token = localStorage.getItem(TOKEN_KEY) ?? ''
let view = null
let stream = null

const esc = (value) =>
  String(value ?? '').replace(
    /[&<>"']/g,
    (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c],
  )
const short = (id) => (id == null ? '' : id.length > 12 ? `…${id.slice(-8)}` : id)
const bytes = (n) => {
  const units = ['B', 'KB', 'MB', 'GB']
  let i = 0
  while (n >= 1000 && i < units.length - 1) {
    n /= 1000
    i++
  }
  return `${n.toFixed(i === 0 ? 0 : 1)} ${units[i]}`
}
const time = (iso) => (iso == null ? '' : new Date(iso).toLocaleTimeString())
const headers = () => (token === '' ? {} : { authorization: `Bearer ${token}` })

function say(text, isError = false) {
  const box = $('message')
  box.textContent = text
  box.className = isError ? 'error' : ''
}

/** Calls the API; a 401 asks for a token and retries once it is given. */
async function api(method, path, body) {
  const init = { method, headers: { ...headers() } }
  if (body instanceof FormData) init.body = body
  else if (body !== undefined) {
    init.headers['content-type'] = 'application/json'
    init.body = JSON.stringify(body)
  }
  const res = await fetch(path, init)
  const answer = await res.json().catch(() => ({}))
  if (res.status === 401) {
    await askToken(answer.error?.message)
    return api(method, path, body)
  }
  if (!res.ok)
    throw new Error(`${answer.error?.message ?? res.statusText} (${answer.error?.code ?? res.status})`)
  return answer
}

function askToken(reason) {
  const dialog = $('token-dialog')
  $('token-error').textContent = token === '' ? '' : (reason ?? 'That token was refused.')
  if (!dialog.open) dialog.showModal()
  return new Promise((resolve) => {
    $('token-form').onsubmit = () => {
      token = $('token-input').value.trim()
      localStorage.setItem(TOKEN_KEY, token)
      $('token-input').value = ''
      $('forget-token').hidden = false
      resolve()
      restartStream()
    }
  })
}

/** Reads the event stream; reconnects after a second when it drops. */
async function follow() {
  const controller = new AbortController()
  stream = controller
  try {
    const res = await fetch('/api/events', { headers: headers(), signal: controller.signal })
    if (res.status === 401) {
      setLive(false)
      const answer = await res.json().catch(() => ({}))
      await askToken(answer.error?.message)
      return
    }
    if (!res.ok || res.body == null) throw new Error(`events: ${res.status}`)
    setLive(true)
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader()
    let buffer = ''
    for (;;) {
      const { value, done } = await reader.read()
      if (done) break
      buffer += value
      let end = buffer.indexOf('\n\n')
      while (end >= 0) {
        handleEvent(buffer.slice(0, end))
        buffer = buffer.slice(end + 2)
        end = buffer.indexOf('\n\n')
      }
    }
  } catch (err) {
    if (controller.signal.aborted) return
    console.warn(err)
  }
  if (stream !== controller) return
  setLive(false)
  setTimeout(follow, 1000)
}

function restartStream() {
  stream?.abort()
  follow()
}

function handleEvent(block) {
  let event = 'message'
  const data = []
  for (const line of block.split('\n')) {
    if (line.startsWith('event:')) event = line.slice(6).trim()
    else if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''))
  }
  if (event !== 'snapshot' || data.length === 0) return
  view = JSON.parse(data.join('\n'))
  recordRates(Date.now())
  render()
}

function setLive(live) {
  const badge = $('live')
  badge.textContent = live ? 'live' : 'reconnecting'
  badge.className = `badge ${live ? 'ok' : 'warn'}`
}

/** Observer roles (src/membership/roles.ts): such a member is not a node; `shoal lb` announces lb. */
const OBSERVER_ROLES = ['lb', 'observer']
const isObserver = (m) => (m.roles ?? []).some((role) => OBSERVER_ROLES.includes(role))
const isLoadBalancer = (m) => (m.roles ?? []).includes('lb')
const plural = (n, word) => `${n} ${word}${n === 1 ? '' : 's'}`

/** "3 nodes alive of 3 · 1 load balancer", as `shoal status` says it. */
function memberCounts(members) {
  const nodes = members.filter((m) => !isObserver(m))
  const alive = nodes.filter((m) => m.state === 'alive').length
  const parts = [`${plural(alive, 'node')} alive of ${nodes.length}`]
  const lbs = members.filter((m) => isLoadBalancer(m) && m.state !== 'left')
  const lbsAlive = lbs.filter((m) => m.state === 'alive').length
  if (lbs.length > 0)
    parts.push(
      lbsAlive === lbs.length
        ? plural(lbs.length, 'load balancer')
        : `${lbsAlive} of ${plural(lbs.length, 'load balancer')} alive`,
    )
  return parts.join(' · ')
}

function render() {
  const { status } = view
  const manager = status.managerStatus ?? {}
  $('cluster').textContent = `cluster ${status.cluster}`
  $('overview').textContent = `${memberCounts(view.members)} · seen from ${short(status.id)} · manager ${
    status.manager == null ? 'none' : short(status.manager)
  }${manager.term == null ? '' : ` (term ${manager.term})`}${manager.quorum === false ? ' · NO QUORUM' : ''}`
  renderNodes()
  renderRollouts()
  renderDistributions()
  renderLoadBalancers()
  renderAudit()
}

function renderNodes() {
  const members = new Map(view.members.map((m) => [m.id, m]))
  $('nodes').innerHTML = view.nodes
    .map((node) => {
      const m = members.get(node.id) ?? {}
      const badges = `${m.manager ? '<span class="badge ok">manager</span>' : ''}${m.self ? '<span class="badge">this agent</span>' : ''}`
      const roles = (m.roles ?? []).map((r) => `<span class="role">${esc(r)}</span>`).join(' ')
      const components = (m.components ?? [])
        .map((c) => `<span class="${esc(c.state)}">${esc(c.name)} ${esc(c.state)}</span>`)
        .join('<br>')
      const ds = dsTable(node.id, m.meta?.osgi?.components)
      const removable = node.id != null && node.state !== 'removing' && node.state !== 'gone'
      const actions =
        node.id == null || node.state === 'gone'
          ? ''
          : `<button type="button" data-copy="${esc(node.id)}" aria-label="Copy node ${esc(short(node.id))}">Copy</button>${
              removable
                ? `<button type="button" class="danger" data-remove="${esc(node.id)}" aria-label="Remove node ${esc(short(node.id))}">−</button>`
                : ''
            }`
      return `<tr data-node="${esc(node.id ?? '')}" data-state="${esc(node.state)}">
        <td><code title="${esc(node.id)}">${esc(short(node.id) || '(launching)')}</code>${badges}</td>
        <td class="${esc(node.state)}">${esc(node.state)}</td>
        <td class="${esc(node.member ?? '')}">${esc(node.member ?? '')}</td>
        <td class="roles">${roles || '—'}</td>
        <td>${esc(node.distribution ?? '—')}</td>
        <td>${components || (ds === '' ? '—' : '')}${ds}</td>
        <td>${esc(node.provider ?? '')} <span class="muted mono">${esc(node.handle ?? '')}</span></td>
        <td><div class="actions">${actions}</div></td></tr>`
    })
    .join('')
}

/** DS states that are fine: active, or satisfied (a delayed component nobody has used yet). */
const DS_SATISFIED = new Set(['active', 'satisfied'])

/**
 * A node's Declarative Services components (member metadata `osgi.components[]`:
 * component, name, state, reason when not satisfied) as a small table, or '' when
 * it announces none.
 */
function dsTable(id, list) {
  if (!Array.isArray(list) || list.length === 0) return ''
  const unsatisfied = list.filter((c) => !DS_SATISFIED.has(c.state)).length
  const rows = list
    .map((c) => {
      const ok = DS_SATISFIED.has(c.state)
      const mark = ok
        ? '<span aria-hidden="true">✓</span><span class="visually-hidden">yes</span>'
        : `<span aria-hidden="true">✗</span><span class="visually-hidden">no</span>${c.reason ? ` ${esc(c.reason)}` : ''}`
      const tone = ok ? 'ok' : c.state === 'disabled' ? 'warn' : 'bad'
      return `<tr data-ds="${esc(c.name)}" data-ds-state="${esc(c.state)}"><td><code>${esc(c.name)}</code></td><td>${esc(c.component)}</td>
        <td class="${c.state === 'active' ? 'ok' : ok ? '' : tone}">${esc(c.state)}</td><td class="${tone}">${mark}</td></tr>`
    })
    .join('')
  const summary = unsatisfied === 0 ? 'all satisfied' : `${unsatisfied} not satisfied`
  return `<table class="ds"><caption>DS components<span class="visually-hidden"> of node ${esc(short(id))}</span>: ${list.length}, <span class="${unsatisfied === 0 ? 'ok' : 'bad'}">${summary}</span></caption>
    <thead><tr><th scope="col">Name</th><th scope="col">Bundle</th><th scope="col">State</th><th scope="col">Satisfied</th></tr></thead>
    <tbody>${rows}</tbody></table>`
}

const written = new WeakMap()
/** Sets an element's HTML unless it is already what was written last; says whether it wrote. */
function setHtml(element, html) {
  if (written.get(element) === html) return false
  written.set(element, html)
  element.innerHTML = html
  return true
}

function rolloutButtons(r) {
  const button = (op, label, cls = '', why = '') =>
    `<button type="button" class="${cls}" data-rollout="${esc(r.id)}" data-op="${op}"${why === '' ? '' : ` title="${esc(why)}"`}>${label}</button>`
  if (r.state === 'waiting-approval')
    return button('approve', 'Approve', 'primary') + button('abort', 'Abort', 'danger')
  if (r.state === 'running') return button('pause', 'Pause') + button('abort', 'Abort', 'danger')
  // Paused by an inconclusive verdict (--on-missing pause): a person accepts the step, runs its analysis again, or aborts.
  if (r.state === 'paused' && r.verdicts?.at(-1)?.verdict === 'inconclusive')
    return (
      button('approve', 'Approve', 'primary', 'accept this step without a verdict and go on') +
      button('resume', 'Resume', '', "run this step's analysis again") +
      button('abort', 'Abort', 'danger', 'send the new version back')
    )
  if (r.state === 'paused') return button('resume', 'Resume', 'primary') + button('abort', 'Abort', 'danger')
  return ''
}

function renderRollouts() {
  const rollouts = [...view.rollouts].sort((a, b) => b.startedAt.localeCompare(a.startedAt))
  const active = rollouts.filter((r) => !FINISHED.has(r.state))
  // Written only when it changed: snapshots come every second under traffic, and a box
  // written again loses the focus of its buttons and its place in a screen reader.
  const changed = setHtml(
    $('active-rollouts'),
    active.length === 0
      ? '<p class="muted">No rollout in progress.</p>'
      : active
          .map(
            (r) => `<div class="rollout" data-rollout-id="${esc(r.id)}" data-state="${esc(r.state)}">
        <strong>${esc(r.id)}</strong> ${esc(r.kind)} to <code>${esc(r.distribution)}</code> · ${esc(r.strategy)} ·
        <span class="${esc(r.state)}">${esc(r.state)}</span>
        <div><progress max="${r.nodes.total}" value="${r.nodes.done}" aria-label="nodes done"></progress>
        ${r.nodes.done} of ${r.nodes.total} done${r.nodes.failed > 0 ? `, ${r.nodes.failed} failed` : ''}</div>
        <div class="chips">${r.members.map((n) => `<span class="${esc(n.status)}" title="${esc(n.id)} ${esc(n.phase ?? '')}">${esc(short(n.id))} ${esc(n.status)}</span>`).join('')}</div>
        ${analysisLine(r)}${stepsLine(r)}${verdictTable(r)}
        <div class="actions">${rolloutButtons(r)}</div>
        <div class="rollout-traffic"></div></div>`,
          )
          .join(''),
  )
  if (changed) tickCountdowns()
  placeTraffic(active)
  setHtml(
    $('rollout-history'),
    rollouts
      .slice(0, 20)
      .map(
        (
          r,
        ) => `<tr data-rollout-row="${esc(r.id)}"><td>${esc(r.id)}</td><td>${esc(r.kind)}</td><td><code>${esc(r.distribution)}</code></td>
        <td>${esc(r.strategy)}</td><td class="${esc(r.state)}">${esc(r.state)}${r.reason != null && r.reason !== r.state ? ` <small>(${esc(r.reason)})</small>` : ''}</td>
        <td>${r.nodes.done}/${r.nodes.total}</td><td>${esc(who(r.requestedBy))}</td><td>${time(r.startedAt)}</td></tr>${rolloutNotes(r)}`,
      )
      .join(''),
  )
}

/** A requester: a token's `NAME (ROLE)` whole, an agent's peer id shortened. */
function who(requestedBy) {
  return /^12D3KooW\w{40,}$/.test(requestedBy) ? short(requestedBy) : requestedBy
}

/** Under a rollout's row: why nodes failed in it, and who approved, paused, resumed or aborted it. */
function rolloutNotes(r) {
  const failures = r.members
    .filter((n) => n.error != null)
    .map((n) => `<div class="bad" data-failure="${esc(n.id)}">${esc(short(n.id))}: ${esc(n.error)}</div>`)
  const actions = (r.actions ?? []).map(
    (a) => `<div class="muted">${esc(a.op)} by ${esc(who(a.by))} at ${time(a.at)}</div>`,
  )
  // A finished rollout keeps its verdicts and their figures (a running one shows them above).
  const verdicts = FINISHED.has(r.state) ? verdictTable(r) : ''
  if (failures.length === 0 && actions.length === 0 && verdicts === '') return ''
  return `<tr data-rollout-notes="${esc(r.id)}"><td></td><td colspan="7">${[...failures, ...actions].join('')}${verdicts}</td></tr>`
}

// ---- Progressive delivery: a rollout's steps, its verdicts and the traffic per version ----

/** How a verdict looks: in the steps line, the verdict table and the chart's shaded windows. */
const VERDICTS = {
  pass: { mark: '✓', word: 'passed', cls: 'ok', shade: 'rgba(26, 127, 55, 0.10)' },
  fail: { mark: '✗', word: 'failed', cls: 'bad', shade: 'rgba(207, 34, 46, 0.12)' },
  inconclusive: { mark: '?', word: 'inconclusive', cls: 'warn', shade: 'rgba(87, 96, 106, 0.12)' },
}
/** The analysis window under way, shaded on the charts. */
const WINDOW_SHADE = 'rgba(154, 103, 0, 0.14)'

/** A share (0–1) as a percent: `0.40 %`, `12.5 %`; `–` when there is none. */
const percent = (share) => (share == null ? '–' : `${(share * 100).toFixed(share < 0.1 ? 2 : 1)} %`)
/** Milliseconds: `4.2 ms`, `18.4 ms`, `120 ms`; `–` when there is none. */
const ms = (value) => (value == null ? '–' : `${value < 100 ? +value.toFixed(1) : Math.round(value)} ms`)
/** A check's value as its condition writes it: an error rate as a percent, latency in ms. */
const checkValue = (condition, value) =>
  condition.trim().startsWith('error-rate') ? percent(value) : ms(value)
/** `1.1` of `educa@1.1`: the traffic figures name the component version. */
const versionOf = (distribution) => distribution?.split('@').at(-1) ?? null

/** The agent's clock minus this browser's (from the traffic answers): countdowns follow the agent. */
let skewMs = 0
const agentNow = () => Date.now() + skewMs
/** "12 s", "2 min 05 s". */
function secondsLeft(iso) {
  const s = Math.max(0, Math.ceil((Date.parse(iso) - agentNow()) / 1000))
  return s < 60 ? `${s} s` : `${Math.floor(s / 60)} min ${String(s % 60).padStart(2, '0')} s`
}

/** What the rollout judges, in a line: conditions, window, minimum requests, what too little traffic does. */
function analysisLine(r) {
  const a = r.analysis
  if (a == null) return ''
  return `<div class="analysis muted">Analysis: ${a.conditions.map((c) => `<code>${esc(c)}</code>`).join(' · ')},
    over ${Math.round(a.intervalMs / 1000)} s windows, at least ${a.minRequests} requests
    (too few: ${a.onMissing === 'pause' ? 'pause' : 'fail'})</div>`
}

/** The newest verdict on step `i`. */
const verdictOf = (r, i) => (r.verdicts ?? []).findLast((v) => v.step === i)

/** What the current step is doing, in words (with a live countdown while its window runs). */
function stepNote(r, i) {
  if (r.window != null && r.window.step === i && r.state === 'running')
    // The countdown is filled in every second (tickCountdowns), so the HTML stays the same between changes.
    return `analysing, <span data-until="${esc(r.window.to)}"></span> left`
  if (r.state === 'waiting-approval') return 'waiting for approval'
  if (r.state === 'paused')
    return verdictOf(r, i)?.verdict === 'inconclusive' ? 'paused: inconclusive' : 'paused'
  if (r.state === 'rolling-back') return 'sending the new version back'
  if (FINISHED.has(r.state)) return r.state
  return r.nodes.updating > 0 ? 'switching nodes' : 'in progress'
}

/** "10% ✓ → 50% (analysing, 12 s left) → 100%": each step with its verdict. */
function stepsLine(r) {
  const steps = r.steps ?? []
  if (steps.length === 0) return ''
  const at = r.stepIndex ?? 0
  const items = steps.map((share, i) => {
    const verdict = verdictOf(r, i)
    const look = verdict == null ? null : VERDICTS[verdict.verdict]
    // A step left behind without a verdict (no analysis, or approved) was passed by hand or by its nodes.
    const passed = look == null && i < at
    const mark = look ?? (passed ? VERDICTS.pass : null)
    const note = i === at && !(FINISHED.has(r.state) && look != null) ? ` (${stepNote(r, i)})` : ''
    const cls = mark?.cls ?? (i === at ? 'warn' : 'muted')
    return `<li class="${cls}" data-step="${i}"${i === at ? ' aria-current="step"' : ''}>${share}%${
      mark == null
        ? ''
        : ` <span aria-hidden="true">${mark.mark}</span><span class="visually-hidden">${mark.word}</span>`
    }${note}</li>`
  })
  return `<ol class="steps" aria-label="steps of ${esc(r.id)}">${items.join('')}</ol>`
}

/** A verdict's step as the rollout asked for it, and the share of nodes it came to when they differ. */
function stepShare(r, v) {
  const asked = r.steps?.[v.step]
  if (asked == null || Math.round(asked) === Math.round(v.percent)) return `${v.percent}%`
  return `${asked}% <span class="muted">(${v.percent}% of nodes)</span>`
}

/** Every verdict with its figures, the new version's against the old one's over the same window. */
function verdictTable(r) {
  const verdicts = r.verdicts ?? []
  if (verdicts.length === 0) return ''
  const pair = (canary, baseline) =>
    `<span class="canary">${canary}</span> <span class="muted">/ ${baseline}</span>`
  const rows = verdicts.map((v) => {
    const look = VERDICTS[v.verdict] ?? { mark: '', word: v.verdict, cls: '' }
    const checks = v.checks
      .map((c) => {
        const mark = c.ok == null ? '–' : c.ok ? '✓' : '✗'
        const cls = c.ok == null ? 'muted' : c.ok ? 'ok' : 'bad'
        const figures =
          c.value == null
            ? 'not judged'
            : `${checkValue(c.condition, c.value)}${c.limit == null ? '' : ` against ${checkValue(c.condition, c.limit)}`}`
        return `<div class="${cls}"><span aria-hidden="true">${mark}</span> <code>${esc(c.condition)}</code> ${figures}</div>`
      })
      .join('')
    return `<tr data-verdict="${v.step}" data-result="${esc(v.verdict)}">
      <td>${v.step + 1}: ${stepShare(r, v)}</td>
      <td class="${look.cls}"><span aria-hidden="true">${look.mark}</span> ${esc(v.verdict)}</td>
      <td>${time(v.from)}–${time(v.to)}</td>
      <td>${pair(v.canary.requests, v.baseline.requests)}</td>
      <td>${pair(percent(v.canary.errorRate), percent(v.baseline.errorRate))}</td>
      <td>${pair(ms(v.canary.p99Ms), ms(v.baseline.p99Ms))}</td>
      <td>${checks}</td>
      <td>${esc(v.decision)}${v.reason == null ? '' : `<div class="muted">${esc(v.reason)}</div>`}</td></tr>`
  })
  return `<table class="verdicts"><caption>Verdicts of ${esc(r.id)}: the new version <span class="muted">/ the old one</span>, over the same window</caption>
    <thead><tr><th scope="col">Step</th><th scope="col">Verdict</th><th scope="col">Window</th><th scope="col">Requests</th>
    <th scope="col">Error rate</th><th scope="col">p99</th><th scope="col">Checks</th><th scope="col">Decision</th></tr></thead>
    <tbody>${rows.join('')}</tbody></table>`
}

/** The countdowns of analysis windows move every second, between snapshots. */
function tickCountdowns() {
  for (const span of document.querySelectorAll('[data-until]'))
    span.textContent = secondsLeft(span.dataset.until)
}

// The traffic charts: one set (requests/s, error rate, p99, each a line per version), shown in the
// newest active rollout, or in the Traffic panel when no rollout runs. They move between the two
// without being drawn again, so re-rendering the rollouts never loses them.

/** How often the page asks for the figures while a rollout runs or the Traffic panel is open. */
const TRAFFIC_POLL_MS = 2_000
/** The chart goes back this far, and to the start of the rollout shown (at most 900 s). */
const TRAFFIC_SECONDS = 120
/** The error rate at each second is over this many seconds (one second of a few requests is noise). */
const ERROR_RATE_SECONDS = 5
const PANEL_KEY = 'shoal-traffic-panel'
// Neither green nor red: those say passed and failed on this page.
const PALETTE = ['#0969da', '#bc4c00', '#8250df', '#1b7c83', '#bf3989', '#6e5a00', '#57606a', '#0a3069']
/** Each version keeps its colour for as long as the page is open. */
const colours = new Map()
const colourOf = (version) => {
  if (!colours.has(version)) colours.set(version, PALETTE[colours.size % PALETTE.length])
  return colours.get(version)
}
const CHARTS = [
  {
    key: 'requests',
    title: 'Requests/s',
    unit: '/s',
    floor: 1,
    format: (v) => `${v < 10 ? +v.toFixed(1) : Math.round(v)}`,
  },
  {
    key: 'errorRate',
    title: `Error rate (${ERROR_RATE_SECONDS} s)`,
    unit: '%',
    floor: 1,
    format: (v) => `${+v.toFixed(2)}%`,
  },
  { key: 'p99', title: 'p99 latency', unit: 'ms', floor: 10, format: (v) => `${+v.toFixed(1)} ms` },
]

const traffic = { answer: null, error: null, busy: false, plots: [], versions: '', shown: null, marks: [] }
const trafficBox = document.createElement('div')
trafficBox.className = 'traffic'
trafficBox.id = 'traffic-chart'
trafficBox.innerHTML = `<div class="traffic-status muted" aria-live="polite"></div>
  <div class="traffic-charts">${CHARTS.map(
    (c) =>
      `<figure data-chart="${c.key}"><figcaption>${c.title}</figcaption><div class="plot" role="img" aria-label="${c.title}"></div></figure>`,
  ).join('')}</div>
  <table class="traffic-figures"><caption></caption><thead><tr><th scope="col">Version</th><th scope="col">Requests</th>
    <th scope="col">Errors</th><th scope="col">Error rate</th><th scope="col">p50</th><th scope="col">p90</th><th scope="col">p99</th></tr></thead>
    <tbody></tbody></table>
  <p class="traffic-key muted"></p>`

const activeRollouts = () =>
  (view?.rollouts ?? [])
    .filter((r) => !FINISHED.has(r.state))
    .sort((a, b) => b.startedAt.localeCompare(a.startedAt))

/** Puts the charts in the newest active rollout, else in the Traffic panel. */
function placeTraffic(active) {
  const shown = active[0] ?? null
  const slot =
    shown == null
      ? $('traffic-home')
      : document.querySelector(`.rollout[data-rollout-id="${CSS.escape(shown.id)}"] .rollout-traffic`)
  if (slot != null && trafficBox.parentElement !== slot) slot.append(trafficBox)
  $('traffic-note').textContent =
    shown == null
      ? 'Requests/s, error rate and p99 per version, summed over every load balancer.'
      : `Shown with rollout ${shown.id} above while it runs.`
  const changed = traffic.shown?.id !== shown?.id
  traffic.shown = shown
  // A rollout that just started (or a panel just opened) need not wait for the next poll.
  if (changed || (traffic.answer == null && traffic.error == null)) pollTraffic()
  else drawTraffic()
}

const wantTraffic = () => view != null && (activeRollouts().length > 0 || $('traffic-panel').open)

/** The seconds asked for: the last two minutes, or back to the start of the rollout shown. */
function trafficSeconds() {
  const started = traffic.shown == null ? null : Date.parse(traffic.shown.startedAt)
  const since = started == null ? 0 : Math.ceil((agentNow() - started) / 1000) + 10
  return Math.min(900, Math.max(TRAFFIC_SECONDS, since))
}

async function pollTraffic() {
  if (traffic.busy || !wantTraffic() || document.hidden) return
  traffic.busy = true
  try {
    // Not through api(): a refused token is the event stream's to ask for, once.
    const res = await fetch(`/api/traffic?seconds=${trafficSeconds()}`, { headers: headers() })
    const answer = await res.json().catch(() => ({}))
    if (!res.ok)
      throw new Error(`${answer.error?.message ?? res.statusText} (${answer.error?.code ?? res.status})`)
    if (answer.at != null) skewMs = Date.parse(answer.at) - Date.now()
    traffic.answer = answer
    traffic.error = null
  } catch (err) {
    traffic.error = err.message
  } finally {
    traffic.busy = false
  }
  drawTraffic()
}

/**
 * One value per second of [from, to) for each chart (`to`, the second under way, is
 * left out: half counted, it would dip): absent seconds had no traffic (0 requests, no p99).
 */
function chartData(answer, versions) {
  const xs = []
  for (let at = answer.from; at < answer.to; at++) xs.push(at)
  const columns = { requests: [], errorRate: [], p99: [] }
  for (const v of versions) {
    const bySecond = new Map(v.series.map((point) => [point.at, point]))
    const requests = xs.map((at) => bySecond.get(at)?.requests ?? 0)
    const errors = xs.map((at) => bySecond.get(at)?.errors ?? 0)
    columns.requests.push(requests)
    columns.p99.push(xs.map((at) => bySecond.get(at)?.p99Ms ?? null))
    columns.errorRate.push(
      xs.map((_, i) => {
        let sent = 0
        let failed = 0
        for (let j = Math.max(0, i - ERROR_RATE_SECONDS + 1); j <= i; j++) {
          sent += requests[j]
          failed += errors[j]
        }
        return sent === 0 ? null : (100 * failed) / sent
      }),
    )
  }
  return Object.fromEntries(Object.entries(columns).map(([key, lines]) => [key, [xs, ...lines]]))
}

/** The analysis windows of the rollout shown: judged ones in their verdict's colour, the one under way in amber. */
function windowMarks(r) {
  if (r == null) return []
  const marks = (r.verdicts ?? []).map((v) => ({
    from: Date.parse(v.from) / 1000,
    to: Date.parse(v.to) / 1000,
    fill: VERDICTS[v.verdict]?.shade ?? WINDOW_SHADE,
  }))
  if (r.window != null)
    marks.push({
      from: Date.parse(r.window.from) / 1000,
      to: Date.parse(r.window.to) / 1000,
      fill: WINDOW_SHADE,
    })
  return marks
}

function shadeWindows(u) {
  const { ctx, bbox } = u
  for (const mark of traffic.marks) {
    const from = Math.max(mark.from, u.scales.x.min)
    const to = Math.min(mark.to, u.scales.x.max)
    if (!(to > from)) continue
    const x0 = u.valToPos(from, 'x', true)
    const x1 = u.valToPos(to, 'x', true)
    ctx.save()
    ctx.fillStyle = mark.fill
    ctx.fillRect(x0, bbox.top, x1 - x0, bbox.height)
    ctx.restore()
  }
}

function makePlots(versions) {
  for (const plot of traffic.plots) plot.destroy()
  const labels = versions.map((v) => v.version)
  traffic.plots = CHARTS.map((chart) => {
    const box = trafficBox.querySelector(`[data-chart="${chart.key}"] .plot`)
    return new uPlot(
      {
        width: Math.max(200, box.clientWidth),
        height: 150,
        legend: { show: false },
        cursor: { sync: { key: 'shoal-traffic' }, drag: { x: false, y: false } },
        scales: { y: { range: (_u, _min, max) => [0, Math.max(chart.floor, (max ?? 0) * 1.15)] } },
        axes: [
          { stroke: '#57606a', grid: { stroke: '#eaeef2' }, ticks: { stroke: '#d0d7de' } },
          {
            stroke: '#57606a',
            grid: { stroke: '#eaeef2' },
            ticks: { stroke: '#d0d7de' },
            size: 64,
            values: (_u, ticks) => ticks.map(chart.format),
          },
        ],
        series: [
          {},
          ...labels.map((label) => ({ label, stroke: colourOf(label), width: 1.5, points: { show: false } })),
        ],
        hooks: { drawClear: [shadeWindows] },
      },
      [[]],
      box,
    )
  })
  traffic.versions = labels.join('\n')
}

/** Keeps each chart as wide as its box. */
const resizer = new ResizeObserver(() => {
  for (const [i, plot] of traffic.plots.entries()) {
    const box = trafficBox.querySelectorAll('.plot')[i]
    if (box.clientWidth > 0 && box.clientWidth !== plot.width)
      plot.setSize({ width: box.clientWidth, height: 150 })
  }
})
for (const box of trafficBox.querySelectorAll('.plot')) resizer.observe(box)

/** Draws the last answer: the charts, the figures per version over the window, and what is missing. */
function drawTraffic() {
  const status = trafficBox.querySelector('.traffic-status')
  const answer = traffic.answer
  const problems = (answer?.loadBalancers ?? [])
    .filter((lb) => !lb.ok)
    .map((lb) => `load balancer ${short(lb.id)}: ${lb.error ?? 'no answer'}`)
  const versions = (answer?.versions ?? []).filter((v) => v.figures.requests > 0 || v.series.length > 0)
  const r = traffic.shown
  const role = (version) =>
    r == null
      ? ''
      : version === versionOf(r.distribution)
        ? ' (new)'
        : version === versionOf(r.from)
          ? ' (old)'
          : ''
  let text = ''
  if (traffic.error != null) text = `Traffic figures unavailable: ${traffic.error}`
  else if (answer == null) text = 'Asking the load balancers…'
  else if ((answer.loadBalancers ?? []).length === 0)
    text = 'No load balancer reports traffic in this cluster.'
  else if (versions.length === 0)
    text = `No traffic through the load balancers in the last ${Math.round((answer.to - answer.from + 1) / 60)} min.`
  status.textContent = [text, ...problems].filter((t) => t !== '').join(' · ')
  status.className = `traffic-status ${traffic.error != null || problems.length > 0 ? 'warn' : 'muted'}`
  const hasData = answer != null && versions.length > 0
  trafficBox.querySelector('.traffic-charts').hidden = !hasData
  trafficBox.querySelector('.traffic-figures').hidden = !hasData
  trafficBox.querySelector('.traffic-key').hidden = !hasData
  trafficBox.dataset.versions = versions.map((v) => v.version).join(' ')
  if (!hasData) return
  // `to` is the second under way (inclusive); the charts stop at the one before, which is whole.
  const seconds = answer.to - answer.from + 1
  trafficBox.querySelector('.traffic-figures caption').textContent =
    `Over the last ${seconds < 120 ? `${seconds} s` : `${Math.round(seconds / 60)} min`}, summed over ${plural(answer.loadBalancers.length, 'load balancer')}`
  trafficBox.querySelector('.traffic-figures tbody').innerHTML = versions
    .map(
      (
        v,
      ) => `<tr data-version="${esc(v.version)}"><th scope="row"><span class="swatch" style="background:${colourOf(v.version)}"></span>
        ${esc(v.version)}${role(v.version)}</th><td>${v.figures.requests}</td><td>${v.figures.errors}</td>
        <td>${percent(v.figures.errorRate)}</td><td>${ms(v.figures.p50Ms)}</td><td>${ms(v.figures.p90Ms)}</td><td>${ms(v.figures.p99Ms)}</td></tr>`,
    )
    .join('')
  traffic.marks = windowMarks(r)
  trafficBox.querySelector('.traffic-key').textContent =
    traffic.marks.length === 0
      ? 'Lines: one colour per version (the table above is the legend).'
      : 'Lines: one colour per version. Shaded: analysis windows (amber under way, green passed, red failed, grey inconclusive).'
  if (typeof uPlot === 'undefined') {
    status.textContent =
      'The chart library did not load (/dashboard/uplot.js); the figures above are the same.'
    trafficBox.querySelector('.traffic-charts').hidden = true
    return
  }
  // The charts need a width: drawn once the box is in the page and shown.
  if (trafficBox.clientWidth === 0) return
  if (traffic.versions !== versions.map((v) => v.version).join('\n') || traffic.plots.length === 0)
    makePlots(versions)
  const data = chartData(answer, versions)
  for (const [i, chart] of CHARTS.entries()) {
    traffic.plots[i].setData(data[chart.key])
    const latest = versions.map((v, j) => {
      const line = data[chart.key][j + 1]
      const last = line.findLast((value) => value != null)
      return `${v.version} ${last == null ? 'none' : chart.format(last)}`
    })
    trafficBox
      .querySelector(`[data-chart="${chart.key}"] .plot`)
      .setAttribute(
        'aria-label',
        `${chart.title} per version over the last ${seconds} s, latest: ${latest.join(', ')}`,
      )
  }
}

/** How far back the rate chart of a download goes (ms). */
const RATE_WINDOW_MS = 60_000
/** Version → [time (ms), bytes/s] seen in snapshots over RATE_WINDOW_MS, while this agent fetches it. */
const rates = new Map()

/** Keeps one rate sample per snapshot; a version held or gone loses its chart. */
function recordRates(now) {
  const fetching = new Set()
  for (const d of view.distributions) {
    if (d.complete) continue
    // Between retries there is no transfer: nothing arrives, which the chart shows as 0.
    if (d.transfer == null && !rates.has(d.id)) continue
    fetching.add(d.id)
    const samples = rates.get(d.id) ?? []
    samples.push([now, d.transfer?.rate ?? 0])
    while (samples.length > 0 && samples[0][0] < now - RATE_WINDOW_MS) samples.shift()
    rates.set(d.id, samples)
  }
  for (const id of rates.keys()) if (!fetching.has(id)) rates.delete(id)
}

/** "eta 12s", "eta 2m05s", "eta 1h02m", "eta –" (as `shoal distributions --watch` says it). */
function eta(seconds) {
  if (seconds == null || seconds < 0) return 'eta –'
  const s = Math.ceil(seconds)
  if (s < 60) return `eta ${s}s`
  const pad = (n) => String(n).padStart(2, '0')
  if (s < 3600) return `eta ${Math.floor(s / 60)}m${pad(s % 60)}s`
  return `eta ${Math.floor(s / 3600)}h${pad(Math.floor(s / 60) % 60)}m`
}

/** The rate over the last minute as a small inline SVG line, newest at the right edge. */
function sparkline(id, now) {
  const samples = rates.get(id) ?? []
  if (samples.length === 0) return ''
  const [width, height] = [120, 24]
  const peak = Math.max(1, ...samples.map(([, rate]) => rate))
  const x = (t) => (width * Math.max(0, t - (now - RATE_WINDOW_MS))) / RATE_WINDOW_MS
  const y = (rate) => height - 1 - ((height - 2) * rate) / peak
  // The last rate holds until the next snapshot: they come only when something changes.
  const points = [...samples, [now, samples.at(-1)[1]]].map(
    ([t, rate]) => `${x(t).toFixed(1)},${y(rate).toFixed(1)}`,
  )
  const area = `${x(samples[0][0]).toFixed(1)},${height} ${points.join(' ')} ${width},${height}`
  return `<svg class="sparkline" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" role="img"
    aria-label="transfer rate over the last minute, peak ${bytes(peak)}/s"><title>peak ${bytes(peak)}/s over the last minute</title>
    <polygon points="${area}"></polygon><polyline points="${points.join(' ')}"></polyline></svg>`
}

/** The Here cell: complete, or how much is held and the download under way (rate, sources, ETA, chart). */
function hereCell(d, now) {
  if (d.complete) return '<td class="complete">complete</td>'
  const t = d.transfer
  const total = t?.bytesTotal ?? d.bytes
  const done = t?.bytesDone ?? Math.floor((d.bytes * d.progress.chunks) / Math.max(1, d.progress.total))
  const percent = total === 0 ? 0 : Math.min(99, Math.floor((100 * done) / total))
  const bar = `<progress max="${Math.max(1, total)}" value="${done}" aria-label="${esc(d.id)} held here"></progress>
    <span class="warn">${percent} %</span> <span class="muted">${bytes(done)} of ${bytes(total)}</span>`
  let detail = '<span class="muted">waiting</span>'
  if (t?.paused != null)
    detail = `<span class="bad" title="${esc(t.paused.code)}">paused: ${esc(t.paused.message)}</span>`
  else if (t != null)
    detail = `<span>${bytes(t.rate)}/s · ${plural(t.sources, 'source')} · ${eta(t.eta)}</span>`
  return `<td class="transfer" data-transfer="${esc(d.id)}"><div>${bar}</div>
    <div class="rate">${detail}${sparkline(d.id, now)}</div></td>`
}

function renderDistributions() {
  const running = new Map()
  for (const m of view.members)
    if (m.distribution != null) running.set(m.distribution, (running.get(m.distribution) ?? 0) + 1)
  const nodes = view.nodes.length
  const now = Date.now()
  $('distributions').innerHTML = view.distributions
    .map(
      (d) => `<tr data-distribution="${esc(d.id)}"><td><code>${esc(d.id)}</code></td>${hereCell(d, now)}
        <td>${d.holders.length} of ${nodes}</td><td>${running.get(d.id) ?? 0}</td><td>${d.artifacts}</td>
        <td>${bytes(d.bytes)}</td><td>${time(d.createdAt)}</td></tr>`,
    )
    .join('')
  const versions = view.distributions.map((d) => d.id)
  fillSelect($('rollout-distribution'), versions, versions.at(-1))
  const names = [...new Set(view.distributions.map((d) => d.name))]
  fillSelect($('rollback-name'), names)
  const name = $('rollback-name').value
  fillSelect(
    $('rollback-to'),
    ['', ...view.distributions.filter((d) => d.name === name).map((d) => d.version)],
    undefined,
    (v) => (v === '' ? 'the previous one' : v),
  )
}

/** Replaces a select's options, keeping what the person chose. */
function fillSelect(select, values, preferred, label = (v) => v) {
  const chosen = select.value
  const html = values.map((v) => `<option value="${esc(v)}">${esc(label(v))}</option>`).join('')
  if (select.dataset.options === html) return
  select.dataset.options = html
  select.innerHTML = html
  select.value = values.includes(chosen) ? chosen : (preferred ?? values[0] ?? '')
}

function renderLoadBalancers() {
  $('lbs').innerHTML =
    view.lb.length === 0
      ? '<p class="muted">No load balancer in this cluster.</p>'
      : view.lb
          .map((lb) => {
            // A member of the cluster with role lb, not one of the nodes above.
            const member = `<span class="role">lb</span> member <code title="${esc(lb.id)}">${esc(short(lb.id))}</code> <span class="${esc(lb.state)}">${esc(lb.state)}</span>`
            if (lb.status == null)
              return `<p data-lb="${esc(lb.id)}"><code>${esc(lb.url ?? short(lb.id))}</code> ${member} <span class="bad">unreachable: ${esc(lb.error)}</span></p>`
            const rows = lb.status.backends
              .map(
                (
                  b,
                ) => `<tr><td><code>${esc(short(b.node))}</code> ${esc(b.component)}</td><td>${esc(b.version)}</td>
                <td class="${b.ejected ? 'bad' : esc(b.state)}">${b.ejected ? 'ejected' : esc(b.state)}</td><td>${b.weight}</td>
                <td>${b.inflight}</td><td>${b.counters.requests}</td><td>${b.counters.failures}</td></tr>`,
              )
              .join('')
            return `<h3 data-lb="${esc(lb.id)}"><a href="${esc(lb.url)}">${esc(lb.url)}</a> <span class="muted">${member} · ${esc(lb.status.service)}, ${lb.status.counters.requests} requests, ${lb.status.counters.failed} failed</span></h3>
            <table><thead><tr><th scope="col">Backend</th><th scope="col">Version</th><th scope="col">State</th><th scope="col">Weight</th><th scope="col">In flight</th><th scope="col">Requests</th><th scope="col">Failures</th></tr></thead>
            <tbody>${rows || '<tr><td colspan="7" class="muted">no backend</td></tr>'}</tbody></table>`
          })
          .join('')
}

function renderAudit() {
  const entries = [
    ...view.audit.map((a) => ({
      time: a.time,
      who: a.role == null ? a.who : `${a.who} (${a.role})`,
      what: `${a.method} ${a.path}`,
      result: String(a.status),
      ok: a.status < 400,
    })),
    ...view.rollouts.map((r) => ({
      time: r.startedAt,
      who: r.requestedBy,
      what: `${r.kind} ${r.id} to ${r.distribution} (${r.strategy})`,
      result: r.state,
      ok: !['failed', 'aborted', 'rolled-back'].includes(r.state),
    })),
  ].sort((a, b) => b.time.localeCompare(a.time))
  $('audit').innerHTML = entries
    .slice(0, 40)
    .map(
      (e) =>
        `<tr><td>${time(e.time)}</td><td>${esc(e.who || '—')}</td><td><code>${esc(e.what)}</code></td><td class="${e.ok ? 'ok' : 'bad'}">${esc(e.result)}</td></tr>`,
    )
    .join('')
}

async function act(label, work) {
  say(`${label}…`)
  try {
    const answer = await work()
    say(`${label}: ${describe(answer)}`)
  } catch (err) {
    say(`${label} failed: ${err.message}`, true)
  }
}

function describe(answer) {
  if (answer?.kind != null && answer?.steps != null) return `operation ${answer.id} ${answer.state}`
  if (answer?.id != null && answer?.state != null) return `${answer.id} ${answer.state}`
  if (answer?.result != null) return `${answer.result} ${answer.distribution?.id ?? ''}`
  return 'done'
}

document.addEventListener('click', (event) => {
  const target = event.target.closest('button')
  if (target == null) return
  if (target.dataset.copy != null) {
    const id = target.dataset.copy
    act(`Copying node ${short(id)}`, () => api('POST', `/api/nodes/${encodeURIComponent(id)}/copy`))
  } else if (target.dataset.remove != null) {
    const id = target.dataset.remove
    if (!confirm(`Remove node ${id}? It is drained, leaves the cluster and stops.`)) return
    act(`Removing node ${short(id)}`, () => api('POST', `/api/nodes/${encodeURIComponent(id)}/remove`, {}))
  } else if (target.dataset.rollout != null) {
    const { rollout, op } = target.dataset
    act(`${op} ${rollout}`, () => api('POST', `/api/rollouts/${encodeURIComponent(rollout)}/${op}`))
  } else if (target.id === 'forget-token') {
    token = ''
    localStorage.removeItem(TOKEN_KEY)
    target.hidden = true
    restartStream()
  }
})

$('add-form').addEventListener('submit', (event) => {
  event.preventDefault()
  const count = Number(new FormData(event.target).get('count'))
  act(`Adding ${count} node${count === 1 ? '' : 's'}`, () => api('POST', '/api/nodes', { count }))
})

$('rollout-form').addEventListener('submit', (event) => {
  event.preventDefault()
  const form = new FormData(event.target)
  const strategy = form.get('strategy')
  const body = { distribution: form.get('distribution'), strategy, approve: form.get('approve') }
  if (strategy === 'rolling') body.maxUnavailable = Number(form.get('maxUnavailable'))
  const steps = String(form.get('steps')).trim()
  if (strategy === 'canary' && steps !== '')
    body.steps = steps.split(',').map((share) => Number(share.trim()))
  else if (strategy === 'canary') body.canaryPercent = Number(form.get('canaryPercent'))
  const analysis = String(form.get('analysis'))
    .split(/[,;]/)
    .map((condition) => condition.trim())
    .filter((condition) => condition !== '')
  if (analysis.length > 0) {
    body.analysis = analysis
    body.intervalMs = Number(form.get('interval')) * 1000
    body.minRequests = Number(form.get('minRequests'))
    body.onMissing = form.get('onMissing')
  }
  act(`Rollout of ${body.distribution}`, () => api('POST', '/api/rollouts', body))
})

$('rollback-name').addEventListener('change', () => view != null && renderDistributions())
$('rollback-form').addEventListener('submit', (event) => {
  event.preventDefault()
  const form = new FormData(event.target)
  const body = { name: form.get('name') }
  if (form.get('to') !== '') body.to = form.get('to')
  act(`Rollback of ${body.name}`, () => api('POST', '/api/rollbacks', body))
})

$('publish-form').addEventListener('submit', (event) => {
  event.preventDefault()
  const form = event.target
  const data = new FormData()
  data.append('name', form.elements.name.value)
  data.append('version', form.elements.version.value)
  data.append('key', form.elements.key.files[0])
  // A folder's files keep their path inside it (the folder's own name dropped), as `shoal publish DIR` sees them.
  for (const file of form.elements.folder.files)
    data.append('file', file, file.webkitRelativePath.split('/').slice(1).join('/') || file.name)
  for (const file of form.elements.files.files) data.append('file', file, file.name)
  if (!data.has('file')) return say('Choose a release folder or files to publish.', true)
  act(`Publishing ${form.elements.name.value} ${form.elements.version.value}`, () => upload(data))
})

/** POST /api/publish with upload progress (fetch reports none). */
function upload(data) {
  const bar = $('publish-progress')
  bar.hidden = false
  bar.value = 0
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest()
    xhr.open('POST', '/api/publish')
    for (const [name, value] of Object.entries(headers())) xhr.setRequestHeader(name, value)
    xhr.upload.onprogress = (e) => {
      if (e.lengthComputable) bar.value = e.loaded / e.total
    }
    xhr.onload = () => {
      bar.hidden = true
      const answer = JSON.parse(xhr.responseText || '{}')
      if (xhr.status === 401)
        return askToken(answer.error?.message).then(() => upload(data).then(resolve, reject))
      if (xhr.status >= 400) return reject(new Error(`${answer.error?.message} (${answer.error?.code})`))
      resolve(answer)
    }
    xhr.onerror = () => {
      bar.hidden = true
      reject(new Error('the agent did not answer'))
    }
    xhr.send(data)
  })
}

// A link may carry the token in its fragment (never sent to a server): keep it, then drop it from the address bar.
const linked = new URLSearchParams(location.hash.slice(1)).get('token')
if (linked != null) {
  token = linked
  localStorage.setItem(TOKEN_KEY, token)
  history.replaceState(null, '', location.pathname)
}
$('forget-token').hidden = token === ''
follow()
// Snapshots come only when something changes: the rate charts of downloads and the
// countdowns of analysis windows move on between them.
setInterval(() => {
  if (view != null && rates.size > 0) renderDistributions()
  tickCountdowns()
}, 1000)
// The traffic figures: polled while a rollout runs or the Traffic panel is open.
const panel = $('traffic-panel')
panel.open = localStorage.getItem(PANEL_KEY) !== 'closed'
panel.addEventListener('toggle', () => {
  localStorage.setItem(PANEL_KEY, panel.open ? 'open' : 'closed')
  pollTraffic()
})
setInterval(pollTraffic, TRAFFIC_POLL_MS)
