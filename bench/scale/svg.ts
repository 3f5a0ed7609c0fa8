/**
 * A minimal SVG line chart with logarithmic axes (no dependency): series of (x, y)
 * points, a legend, and decade grid lines. Points with a null y are left out of
 * the line and marked at the top edge with an x ("did not finish").
 */
export interface Series {
  name: string
  color: string
  /** Dashed line: simulated; solid: measured. */
  dashed?: boolean
  points: Array<{ x: number; y: number | null }>
}

export interface Chart {
  title: string
  xLabel: string
  yLabel: string
  series: Series[]
  /** Optional notes printed under the chart. */
  notes?: string[]
}

const WIDTH = 760
const HEIGHT = 460
const MARGIN = { left: 80, right: 230, top: 44, bottom: 64 }

export function lineChart(chart: Chart): string {
  const xs = chart.series.flatMap((s) => s.points.map((p) => p.x)).filter((x) => x > 0)
  const ys = chart.series
    .flatMap((s) => s.points.map((p) => p.y))
    .filter((y): y is number => y != null && y > 0)
  const [x0, x1] = decades(Math.min(...xs), Math.max(...xs))
  const [y0, y1] = decades(Math.min(...ys), Math.max(...ys))
  const plotW = WIDTH - MARGIN.left - MARGIN.right
  const notes = chart.notes ?? []
  const height = HEIGHT + notes.length * 16
  const plotH = HEIGHT - MARGIN.top - MARGIN.bottom
  const px = (x: number) => MARGIN.left + ((Math.log10(x) - x0) / (x1 - x0)) * plotW
  const py = (y: number) => MARGIN.top + plotH - ((Math.log10(y) - y0) / (y1 - y0)) * plotH
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="${WIDTH / 2 - MARGIN.right / 2}" y="24" text-anchor="middle" font-size="15" font-weight="bold">${esc(chart.title)}</text>`,
  ]
  // Grid and ticks: every power of ten, with 2 and 5 as minor lines.
  for (let d = x0; d <= x1; d++) {
    for (const m of [1, 2, 5]) {
      const v = m * 10 ** d
      if (Math.log10(v) > x1 + 1e-9) continue
      const x = px(v)
      out.push(line(x, MARGIN.top, x, MARGIN.top + plotH, m === 1 ? '#ccc' : '#eee'))
      out.push(
        `<text x="${x}" y="${MARGIN.top + plotH + 16}" text-anchor="middle" fill="#444">${tick(v)}</text>`,
      )
    }
  }
  for (let d = y0; d <= y1; d++) {
    for (const m of [1, 2, 5]) {
      const v = m * 10 ** d
      if (Math.log10(v) > y1 + 1e-9) continue
      const y = py(v)
      out.push(line(MARGIN.left, y, MARGIN.left + plotW, y, m === 1 ? '#ccc' : '#eee'))
      out.push(`<text x="${MARGIN.left - 6}" y="${y + 4}" text-anchor="end" fill="#444">${tick(v)}</text>`)
    }
  }
  out.push(
    `<rect x="${MARGIN.left}" y="${MARGIN.top}" width="${plotW}" height="${plotH}" fill="none" stroke="#888"/>`,
    `<text x="${MARGIN.left + plotW / 2}" y="${MARGIN.top + plotH + 40}" text-anchor="middle">${esc(chart.xLabel)}</text>`,
    `<text transform="translate(20 ${MARGIN.top + plotH / 2}) rotate(-90)" text-anchor="middle">${esc(chart.yLabel)}</text>`,
  )
  chart.series.forEach((s, i) => {
    const dash = s.dashed ? ' stroke-dasharray="6 4"' : ''
    const shown = s.points.filter((p): p is { x: number; y: number } => p.y != null && p.y > 0)
    if (shown.length > 1) {
      const d = shown.map((p, j) => `${j === 0 ? 'M' : 'L'}${fix(px(p.x))} ${fix(py(p.y))}`).join(' ')
      out.push(`<path d="${d}" fill="none" stroke="${s.color}" stroke-width="2"${dash}/>`)
    }
    for (const p of shown) {
      out.push(
        s.dashed
          ? `<rect x="${fix(px(p.x) - 3.5)}" y="${fix(py(p.y) - 3.5)}" width="7" height="7" fill="white" stroke="${s.color}" stroke-width="2"/>`
          : `<circle cx="${fix(px(p.x))}" cy="${fix(py(p.y))}" r="4" fill="${s.color}"/>`,
      )
    }
    for (const p of s.points.filter((q) => q.y == null)) {
      const x = px(p.x)
      const y = MARGIN.top + 8 + i * 3
      out.push(
        `<path d="M${fix(x - 5)} ${fix(y - 5)} L${fix(x + 5)} ${fix(y + 5)} M${fix(x - 5)} ${fix(y + 5)} L${fix(x + 5)} ${fix(y - 5)}" stroke="${s.color}" stroke-width="2"/>`,
      )
    }
    // Legend
    const ly = MARGIN.top + 10 + i * 20
    const lx = MARGIN.left + plotW + 14
    out.push(`<path d="M${lx} ${ly} L${lx + 28} ${ly}" stroke="${s.color}" stroke-width="2"${dash}/>`)
    out.push(`<text x="${lx + 34}" y="${ly + 4}">${esc(s.name)}</text>`)
  })
  const legendEnd = MARGIN.top + 10 + chart.series.length * 20
  out.push(
    `<text x="${MARGIN.left + plotW + 14}" y="${legendEnd + 10}" fill="#666">solid, dots: measured</text>`,
    `<text x="${MARGIN.left + plotW + 14}" y="${legendEnd + 26}" fill="#666">dashed, squares: simulated</text>`,
    `<text x="${MARGIN.left + plotW + 14}" y="${legendEnd + 42}" fill="#666">x at the top: did not finish</text>`,
  )
  notes.forEach((note, i) => {
    out.push(`<text x="${MARGIN.left}" y="${HEIGHT - 8 + i * 16}" fill="#444">${esc(note)}</text>`)
  })
  out.push('</svg>')
  return `${out.join('\n')}\n`
}

function decades(min: number, max: number): [number, number] {
  const lo = Math.floor(Math.log10(min))
  const hi = Math.ceil(Math.log10(max))
  return [lo, hi === lo ? lo + 1 : hi]
}

function tick(v: number): string {
  if (v >= 1_000_000) return `${v / 1_000_000}M`
  if (v >= 1000) return `${v / 1000}k`
  return String(v)
}

function line(x1: number, y1: number, x2: number, y2: number, stroke: string): string {
  return `<line x1="${fix(x1)}" y1="${fix(y1)}" x2="${fix(x2)}" y2="${fix(y2)}" stroke="${stroke}"/>`
}

const fix = (v: number) => Math.round(v * 10) / 10

function esc(text: string): string {
  return text.replaceAll('&', '&amp;').replaceAll('<', '&lt;').replaceAll('>', '&gt;')
}
