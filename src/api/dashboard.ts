/**
 * A minimal page at `/` until the full dashboard lands: the members this agent
 * sees, refreshed every two seconds from /api/members.
 */
export const DASHBOARD_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Shoal</title>
<style>
  body { font: 15px/1.4 system-ui, sans-serif; margin: 2rem; color: #1b1f24; }
  table { border-collapse: collapse; min-width: 40rem; }
  th, td { text-align: left; padding: .35rem .8rem; border-bottom: 1px solid #d0d7de; }
  code { font-size: 13px; }
  .alive { color: #1a7f37; } .suspect { color: #9a6700; } .dead, .left { color: #cf222e; }
</style>
</head>
<body>
<h1>Shoal <small id="cluster"></small></h1>
<p id="summary" aria-live="polite">Loading…</p>
<table>
  <thead><tr><th scope="col">Member</th><th scope="col">State</th><th scope="col">Incarnation</th><th scope="col">Addresses</th></tr></thead>
  <tbody id="members"></tbody>
</table>
<script>
const esc = (s) => String(s).replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c])
async function refresh() {
  try {
    const [status, members] = await Promise.all([fetch('/api/status').then((r) => r.json()), fetch('/api/members').then((r) => r.json())])
    document.getElementById('cluster').textContent = 'cluster ' + status.cluster
    document.getElementById('summary').textContent = status.members.alive + ' alive of ' + status.members.total + ' known, seen from ' + status.id
    document.getElementById('members').innerHTML = members.map((m) =>
      '<tr><td><code>' + esc(m.id) + (m.self ? ' (this agent)' : '') + '</code></td><td class="' + esc(m.state) + '">' + esc(m.state) +
      '</td><td>' + m.incarnation + '</td><td><code>' + m.addrs.map(esc).join('<br>') + '</code></td></tr>').join('')
  } catch (err) {
    document.getElementById('summary').textContent = 'Agent unreachable: ' + err.message
  }
}
refresh()
setInterval(refresh, 2000)
</script>
</body>
</html>
`
