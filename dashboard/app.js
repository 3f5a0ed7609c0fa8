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
        <td>${components || '—'}</td>
        <td>${esc(node.provider ?? '')} <span class="muted mono">${esc(node.handle ?? '')}</span></td>
        <td><div class="actions">${actions}</div></td></tr>`
    })
    .join('')
}

function rolloutButtons(r) {
  const button = (op, label, cls = '') =>
    `<button type="button" class="${cls}" data-rollout="${esc(r.id)}" data-op="${op}">${label}</button>`
  if (r.state === 'waiting-approval')
    return button('approve', 'Approve', 'primary') + button('abort', 'Abort', 'danger')
  if (r.state === 'running') return button('pause', 'Pause') + button('abort', 'Abort', 'danger')
  if (r.state === 'paused') return button('resume', 'Resume', 'primary') + button('abort', 'Abort', 'danger')
  return ''
}

function renderRollouts() {
  const rollouts = [...view.rollouts].sort((a, b) => b.startedAt.localeCompare(a.startedAt))
  const active = rollouts.filter((r) => !FINISHED.has(r.state))
  $('active-rollouts').innerHTML =
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
        <div class="actions">${rolloutButtons(r)}</div></div>`,
          )
          .join('')
  $('rollout-history').innerHTML = rollouts
    .slice(0, 20)
    .map(
      (
        r,
      ) => `<tr data-rollout-row="${esc(r.id)}"><td>${esc(r.id)}</td><td>${esc(r.kind)}</td><td><code>${esc(r.distribution)}</code></td>
        <td>${esc(r.strategy)}</td><td class="${esc(r.state)}">${esc(r.state)}${r.reason != null && r.reason !== r.state ? ` <small>(${esc(r.reason)})</small>` : ''}</td>
        <td>${r.nodes.done}/${r.nodes.total}</td><td>${esc(who(r.requestedBy))}</td><td>${time(r.startedAt)}</td></tr>${rolloutNotes(r)}`,
    )
    .join('')
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
  if (failures.length === 0 && actions.length === 0) return ''
  return `<tr data-rollout-notes="${esc(r.id)}"><td></td><td colspan="7">${[...failures, ...actions].join('')}</td></tr>`
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
  if (strategy === 'canary') body.canaryPercent = Number(form.get('canaryPercent'))
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
// Snapshots come only when something changes: the rate charts of downloads move on between them.
setInterval(() => {
  if (view != null && rates.size > 0) renderDistributions()
}, 1000)
