/**
 * Hand-written SVG charts: a line chart (a series per contender) and a
 * grouped bar chart, both with log or linear value axes. Plain strings, no
 * chart library, so the files diff well and render on GitHub.
 */

export interface Series {
  readonly name: string
  readonly points: ReadonlyArray<readonly [x: number, y: number]>
}

export interface LineChart {
  readonly title: string
  readonly xLabel: string
  readonly yLabel: string
  readonly series: ReadonlyArray<Series>
  readonly xLog?: boolean
  readonly yLog?: boolean
}

export interface BarGroup {
  readonly label: string
  readonly bars: ReadonlyArray<{ readonly name: string; readonly value: number }>
}

export interface BarChart {
  readonly title: string
  readonly yLabel: string
  readonly groups: ReadonlyArray<BarGroup>
  readonly yLog?: boolean
}

const palette: Record<string, string> = {
  "lifeguard": "#1f6feb",
  "lifeguard-scoped": "#79b8ff",
  "effect-pool": "#d73a49",
  "tarn": "#28a745",
  "generic-pool": "#f66a0a",
  "scoped-ceiling": "#6a737d",
  "use-ceiling": "#b0b7bf",
  "handoff-ceiling": "#8a63d2",
  "pg-pool": "#28a745",
  "effect-sql-pg": "#d73a49",
  "p50": "#79b8ff",
  "p90": "#1f6feb",
  "p99": "#0b3d91",
  "the pool's own": "#1f6feb",
  "with the waiter": "#b0b7bf"
}
const fallback = ["#6f42c1", "#e36209", "#22863a", "#005cc5", "#b31d28"]
const color = (name: string, i: number) => palette[name] ?? fallback[i % fallback.length]!
const dashed = (name: string) => name.endsWith("-ceiling")

const width = 720
const height = 420
const margin = { top: 48, right: 170, bottom: 56, left: 84 }
const plotW = width - margin.left - margin.right
const plotH = height - margin.top - margin.bottom

const esc = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;")

/** 1.2k, 35k, 1.1M: short labels for ticks. */
export const short = (v: number): string => {
  const a = Math.abs(v)
  const trim = (x: number) => (x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(0) : x.toFixed(1).replace(/\.0$/, ""))
  if (a >= 1e6) return `${trim(v / 1e6)}M`
  if (a >= 1e3) return `${trim(v / 1e3)}k`
  if (a >= 1 || a === 0) return trim(v)
  return v.toPrecision(1)
}

interface Axis {
  readonly toPx: (v: number) => number
  readonly ticks: ReadonlyArray<number>
}

const logAxis = (min: number, max: number, pixels: number, flip: boolean): Axis => {
  const lo = Math.floor(Math.log10(min))
  const hi = Math.max(lo + 1, Math.ceil(Math.log10(max)))
  const ticks: Array<number> = []
  const steps = hi - lo <= 2 ? [1, 2, 5] : [1]
  for (let e = lo; e <= hi; e++) for (const m of steps) if (m * 10 ** e <= 10 ** hi) ticks.push(m * 10 ** e)
  const f = (v: number) => ((Math.log10(v) - lo) / (hi - lo)) * pixels
  return { toPx: flip ? (v) => pixels - f(v) : f, ticks }
}

const linearAxis = (max: number, pixels: number, flip: boolean): Axis => {
  const raw = max / 5
  const mag = 10 ** Math.floor(Math.log10(raw))
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw)!
  const top = Math.ceil(max / step) * step
  const ticks: Array<number> = []
  for (let v = 0; v <= top + step / 2; v += step) ticks.push(v)
  const f = (v: number) => (v / top) * pixels
  return { toPx: flip ? (v) => pixels - f(v) : f, ticks }
}

const frame = (title: string, body: string) =>
  `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="-apple-system, Segoe UI, Helvetica, Arial, sans-serif" font-size="12">
<rect width="${width}" height="${height}" fill="#ffffff"/>
<text x="${width / 2}" y="24" text-anchor="middle" font-size="15" font-weight="600">${esc(title)}</text>
${body}
</svg>
`

const yAxis = (axis: Axis, label: string) => {
  const lines = axis.ticks.map((t) => {
    const y = margin.top + axis.toPx(t)
    return `<line x1="${margin.left}" x2="${margin.left + plotW}" y1="${y.toFixed(1)}" y2="${y.toFixed(1)}" stroke="#e1e4e8"/>` +
      `<text x="${margin.left - 8}" y="${(y + 4).toFixed(1)}" text-anchor="end" fill="#444">${short(t)}</text>`
  })
  const cy = margin.top + plotH / 2
  return lines.join("\n") +
    `\n<text x="18" y="${cy}" text-anchor="middle" transform="rotate(-90 18 ${cy})" fill="#222">${esc(label)}</text>`
}

const legend = (names: ReadonlyArray<string>) =>
  names.map((name, i) => {
    const y = margin.top + 8 + i * 20
    const x = margin.left + plotW + 16
    return `<line x1="${x}" x2="${x + 22}" y1="${y}" y2="${y}" stroke="${color(name, i)}" stroke-width="3"${dashed(name) ? ' stroke-dasharray="5 3"' : ""}/>` +
      `<text x="${x + 28}" y="${y + 4}">${esc(name)}</text>`
  }).join("\n")

/** Lines with markers, one per series; missing points simply end a line. */
export const lineChart = (spec: LineChart): string => {
  const xs = spec.series.flatMap((s) => s.points.map((p) => p[0]))
  const ys = spec.series.flatMap((s) => s.points.map((p) => p[1])).filter((y) => y > 0 && Number.isFinite(y))
  if (xs.length === 0 || ys.length === 0) return frame(spec.title, `<text x="${width / 2}" y="${height / 2}" text-anchor="middle">no data</text>`)
  const xAxis = spec.xLog
    ? logAxis(Math.min(...xs), Math.max(...xs), plotW, false)
    : linearAxis(Math.max(...xs), plotW, false)
  const yAx = spec.yLog ? logAxis(Math.min(...ys), Math.max(...ys), plotH, true) : linearAxis(Math.max(...ys), plotH, true)
  const distinctX = [...new Set(xs)].sort((a, b) => a - b)
  const xTicks = distinctX.map((t) => {
    const x = margin.left + xAxis.toPx(t)
    return `<line x1="${x.toFixed(1)}" x2="${x.toFixed(1)}" y1="${margin.top + plotH}" y2="${margin.top + plotH + 5}" stroke="#444"/>` +
      `<text x="${x.toFixed(1)}" y="${margin.top + plotH + 20}" text-anchor="middle" fill="#444">${short(t)}</text>`
  })
  const lines = spec.series.map((s, i) => {
    const pts = s.points.filter((p) => p[1] > 0 && Number.isFinite(p[1]))
      .map((p) => [margin.left + xAxis.toPx(p[0]), margin.top + yAx.toPx(p[1])] as const)
    const c = color(s.name, i)
    const path = pts.map((p, k) => `${k === 0 ? "M" : "L"}${p[0].toFixed(1)},${p[1].toFixed(1)}`).join(" ")
    return `<path d="${path}" fill="none" stroke="${c}" stroke-width="2.5"${dashed(s.name) ? ' stroke-dasharray="5 3"' : ""}/>` +
      pts.map((p) => `<circle cx="${p[0].toFixed(1)}" cy="${p[1].toFixed(1)}" r="3.5" fill="${c}"/>`).join("")
  })
  const body = [
    yAxis(yAx, spec.yLabel),
    `<line x1="${margin.left}" x2="${margin.left + plotW}" y1="${margin.top + plotH}" y2="${margin.top + plotH}" stroke="#444"/>`,
    ...xTicks,
    `<text x="${margin.left + plotW / 2}" y="${height - 14}" text-anchor="middle" fill="#222">${esc(spec.xLabel)}</text>`,
    ...lines,
    legend(spec.series.map((s) => s.name))
  ]
  return frame(spec.title, body.join("\n"))
}

/** A group's label, on two lines when long ("scoped-fiber" / "-baseline") so neighbours do not overlap. */
const groupLabel = (label: string, x: number, y: number) => {
  const cut = label.length > 13 ? label.lastIndexOf("-") : -1
  if (cut <= 0) return `<text x="${x.toFixed(1)}" y="${y}" text-anchor="middle" fill="#222">${esc(label)}</text>`
  return `<text x="${x.toFixed(1)}" y="${y}" text-anchor="middle" fill="#222">${esc(label.slice(0, cut))}` +
    `<tspan x="${x.toFixed(1)}" dy="14">${esc(label.slice(cut))}</tspan></text>`
}

/** Groups along the x axis, a bar per name within each group, value labels on top. */
export const barChart = (spec: BarChart): string => {
  const values = spec.groups.flatMap((g) => g.bars.map((b) => b.value)).filter((v) => v > 0 && Number.isFinite(v))
  if (values.length === 0) return frame(spec.title, `<text x="${width / 2}" y="${height / 2}" text-anchor="middle">no data</text>`)
  const yAx = spec.yLog
    ? logAxis(Math.min(...values), Math.max(...values), plotH, true)
    : linearAxis(Math.max(...values), plotH, true)
  const names = [...new Set(spec.groups.flatMap((g) => g.bars.map((b) => b.name)))]
  const groupW = plotW / spec.groups.length
  const barW = Math.min(36, (groupW * 0.8) / names.length)
  const base = margin.top + plotH
  const bars = spec.groups.map((g, gi) => {
    const x0 = margin.left + gi * groupW + (groupW - barW * names.length) / 2
    const rects = g.bars.map((b) => {
      const k = names.indexOf(b.name)
      const x = x0 + k * barW
      const ok = b.value > 0 && Number.isFinite(b.value)
      const y = ok ? margin.top + yAx.toPx(b.value) : base
      return `<rect x="${(x + 1).toFixed(1)}" y="${y.toFixed(1)}" width="${(barW - 2).toFixed(1)}" height="${(base - y).toFixed(1)}" fill="${color(b.name, k)}"/>` +
        `<text x="${(x + barW / 2).toFixed(1)}" y="${(y - 4).toFixed(1)}" text-anchor="middle" font-size="10" fill="#444">${ok ? short(b.value) : "n/a"}</text>`
    })
    return rects.join("\n") + "\n" + groupLabel(g.label, margin.left + gi * groupW + groupW / 2, base + 20)
  })
  const legendRects = names.map((name, i) => {
    const y = margin.top + 8 + i * 20
    const x = margin.left + plotW + 16
    return `<rect x="${x}" y="${y - 7}" width="22" height="12" fill="${color(name, i)}"/><text x="${x + 28}" y="${y + 4}">${esc(name)}</text>`
  })
  const body = [
    yAxis(yAx, spec.yLabel),
    `<line x1="${margin.left}" x2="${margin.left + plotW}" y1="${base}" y2="${base}" stroke="#444"/>`,
    ...bars,
    ...legendRects
  ]
  return frame(spec.title, body.join("\n"))
}
