/**
 * Human output: one table per suite, and the targets from the issues with
 * whether this run met them.
 */
import type { Result, Suite } from "./measure.js"

interface Column {
  readonly head: string
  readonly cell: (r: Result) => string
}

const fmt = (x: number | null | undefined, digits = 0): string =>
  x === null || x === undefined || Number.isNaN(x) ? "-" : x.toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: digits })

const ratio = (r: Result) => (r.ratio === undefined ? "-" : `${r.ratio.toFixed(2)}x`)

/** Spread of the repetitions around their median, so a reader sees how noisy a figure is. */
const spread = (r: Result) => {
  const xs = r.samples
  if (xs === undefined || xs.length < 2) return "-"
  const mid = r.opsPerSec ?? r.nsPerCheckout ?? r.bytesPerWaiter
  if (mid === undefined || mid === null || mid === 0) return "-"
  return `±${((100 * (Math.max(...xs) - Math.min(...xs))) / 2 / Math.abs(mid)).toFixed(0)}%`
}

const columns: Record<string, ReadonlyArray<Column>> = {
  throughput: [
    { head: "ops/sec", cell: (r) => fmt(r.opsPerSec) },
    { head: "ratio", cell: ratio },
    { head: "spread", cell: spread }
  ],
  mongodb: [
    { head: "ops/sec", cell: (r) => fmt(r.opsPerSec) },
    { head: "ratio", cell: ratio },
    { head: "CPU µs/op", cell: (r) => fmt(r.cpuUsPerOp, 1) },
    { head: "spread", cell: spread }
  ],
  memory: [
    { head: "bytes/waiter (pool)", cell: (r) => fmt(r.bytesPerWaiter) },
    { head: "bytes/waiter (total)", cell: (r) => fmt(r.totalBytesPerWaiter) },
    { head: "ratio", cell: ratio }
  ],
  fairness: [
    { head: "ops/sec", cell: (r) => fmt(r.opsPerSec) },
    { head: "p50 ms", cell: (r) => fmt(r.p50Ms, 3) },
    { head: "p90 ms", cell: (r) => fmt(r.p90Ms, 3) },
    { head: "p99 ms", cell: (r) => fmt(r.p99Ms, 3) },
    { head: "max ms", cell: (r) => fmt(r.maxMs, 1) },
    { head: "p99/p50", cell: (r) => (r.p50Ms === undefined || r.p99Ms === undefined ? "-" : fmt(r.p99Ms / r.p50Ms, 1)) },
    { head: "fifo", cell: (r) => (r.fifo === undefined ? "-" : r.fifo ? "yes" : `no (${fmt(r.outOfOrder)} out of order)`) }
  ],
  scale: [
    { head: "ns/checkout", cell: (r) => fmt(r.nsPerCheckout) },
    { head: "vs fewest waiters", cell: (r) => (r.growth === undefined ? "-" : `${r.growth.toFixed(2)}x`) },
    { head: "ratio", cell: ratio },
    { head: "spread", cell: spread }
  ]
}

const columnsFor = (suite: string) => columns[suite] ?? columns["throughput"]!

const table = (rows: ReadonlyArray<ReadonlyArray<string>>): string => {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((row) => row[c]!.length)))
  return rows
    .map((row) => row.map((cell, c) => (c < 2 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join("  "))
    .join("\n")
}

/** A suite's results as a table, grouped by configuration. */
export const report = (suite: Suite, results: ReadonlyArray<Result>): string => {
  const cols = columnsFor(suite.name)
  const rows = [["config", "contender", ...cols.map((c) => c.head)]]
  let last = ""
  for (const r of results) {
    rows.push([r.config === last ? "" : r.config, r.contender, ...cols.map((c) => c.cell(r))])
    last = r.config
  }
  const ref = suite.reference === undefined ? "" : ` (ratio: against ${suite.reference})`
  return `\n${suite.name}${ref}\n${table(rows)}\n`
}

/** The same table in Markdown, for docs/bench/results.md. */
export const markdown = (suite: string, reference: string | undefined, results: ReadonlyArray<Result>): string => {
  const cols = columnsFor(suite)
  const head = ["config", "contender", ...cols.map((c) => c.head)]
  const lines = [
    `| ${head.join(" | ")} |`,
    `|${head.map((_, i) => (i < 2 ? " --- " : " ---: ")).join("|")}|`
  ]
  let last = ""
  for (const r of results) {
    const cells = [r.config === last ? "" : `\`${r.config}\``, r.contender, ...cols.map((c) => c.cell(r))]
    lines.push(`| ${cells.join(" | ")} |`)
    last = r.config
  }
  const ref = reference === undefined ? "" : `Ratios are against \`${reference}\` in the same configuration.\n\n`
  return `${ref}${lines.join("\n")}\n`
}

export interface Check {
  readonly target: string
  readonly met: boolean
  readonly detail: string
}

const find = (results: ReadonlyArray<Result>, suite: string, config: string, contender: string) =>
  results.find((r) => r.suite === suite && r.config === config && r.contender === contender)

/** Compares `a` to `b` in every configuration of `suite` (that `which` keeps) where both were measured. */
const relative = (
  results: ReadonlyArray<Result>,
  suite: string,
  a: string,
  b: string,
  atLeast: number,
  which: { readonly label: string; readonly keep: (config: string) => boolean } = { label: "every config", keep: () => true }
): Check | undefined => {
  const pairs = results
    .filter((r) => r.suite === suite && r.contender === a && which.keep(r.config))
    .flatMap((r) => {
      const other = find(results, suite, r.config, b)
      return r.opsPerSec !== null && other?.opsPerSec != null && other.opsPerSec > 0
        ? [{ config: r.config, x: r.opsPerSec / other.opsPerSec }]
        : []
    })
  if (pairs.length === 0) return undefined
  return {
    target: `${suite}: ${a} >= ${atLeast}x ${b} in ${which.label}`,
    met: pairs.every((p) => p.x >= atLeast),
    detail: pairs.map((p) => `${p.config} ${p.x.toFixed(2)}x`).join(", ")
  }
}

/** Compares `a`'s client CPU per operation to `b`'s in every configuration of `suite`. */
const cpuPerOp = (results: ReadonlyArray<Result>, suite: string, a: string, b: string, atMost: number): Check | undefined => {
  const pairs = results
    .filter((r) => r.suite === suite && r.contender === a && r.cpuUsPerOp !== undefined)
    .flatMap((r) => {
      const other = find(results, suite, r.config, b)?.cpuUsPerOp
      return other !== undefined && other > 0 ? [{ config: r.config, x: r.cpuUsPerOp! / other }] : []
    })
  if (pairs.length === 0) return undefined
  return {
    target: `${suite}: ${a}'s CPU per operation <= ${atMost}x ${b}'s`,
    met: pairs.every((p) => p.x <= atMost),
    detail: pairs.map((p) => `${p.config} ${p.x.toFixed(2)}x`).join(", ")
  }
}

/** The targets of the issues (#2, #3, #4 and #10's contended path), checked against what this run measured. */
export const targets = (results: ReadonlyArray<Result>): ReadonlyArray<Check> => {
  const checks: Array<Check | undefined> = [
    relative(results, "inmem", "lifeguard", "effect-pool", 4, {
      label: "every config of issue #2",
      keep: (config) => !config.endsWith("-yield")
    }),
    relative(results, "inmem", "lifeguard", "effect-pool", 4, {
      label: "every yielding config (this bench's addition)",
      keep: (config) => config.endsWith("-yield")
    }),
    relative(results, "inmem", "lifeguard-scoped", "scoped-ceiling", 0.9),
    relative(results, "pg", "lifeguard", "effect-sql-pg", 1.0),
    relative(results, "pg", "lifeguard-pool", "pg-pool", 0.9),
    relative(results, "mongodb", "lifeguard", "mongodb-driver", 0.9),
    cpuPerOp(results, "mongodb", "lifeguard", "mongodb-driver", 1.2)
  ]
  const m = results.find((r) => r.suite === "memory" && r.contender === "lifeguard")
  if (m?.bytesPerWaiter !== undefined) {
    checks.push({
      target: "memory: lifeguard < 1024 bytes per parked waiter (pool's own, beyond the fiber)",
      met: m.bytesPerWaiter < 1024,
      detail: `${Math.round(m.bytesPerWaiter)} bytes`
    })
  }
  const floor = results.find((r) => r.suite === "memory" && r.contender === "interruptible-wait-floor")
  if (m?.totalBytesPerWaiter !== undefined && floor?.totalBytesPerWaiter !== undefined) {
    const above = m.totalBytesPerWaiter - floor.totalBytesPerWaiter
    checks.push({
      target: "memory: lifeguard <= 512 bytes per parked waiter above interruptible-wait-floor (total bytes per waiter)",
      met: above <= 512,
      detail: `${Math.round(above)} bytes (${Math.round(m.totalBytesPerWaiter)} vs ${Math.round(floor.totalBytesPerWaiter)})`
    })
  }
  const fair = results.filter((r) => r.suite === "fairness" && r.contender === "lifeguard")
  if (fair.length > 0) {
    checks.push({
      target: "fairness: lifeguard serves waiters in FIFO order",
      met: fair.every((r) => r.fifo === true),
      detail: fair.map((r) => `${r.config} ${r.fifo ? "fifo" : `${r.outOfOrder} out of order`}, p99/p50 ${fmt((r.p99Ms ?? NaN) / (r.p50Ms ?? NaN), 1)}`).join(", ")
    })
  }
  const series = results.filter((r) => r.suite === "scale" && r.contender === "lifeguard")
  if (series.length > 0) {
    const worst = Math.max(...series.map((r) => r.growth ?? NaN))
    checks.push({
      target: `scale: lifeguard's cost per checkout stays flat (at most ${flatLimit}x the cost with the fewest waiters)`,
      met: worst <= flatLimit,
      detail: series.map((r) => `${r.config} ${fmt(r.nsPerCheckout)} ns`).join(", ")
    })
    const floor = results.filter((r) => r.suite === "scale" && r.contender === "handoff-ceiling")
    const pairs = series.flatMap((r) => {
      const f = floor.find((x) => x.config === r.config)
      return f?.growth !== undefined && r.growth !== undefined ? [{ config: r.config, x: r.growth / f.growth }] : []
    })
    if (pairs.length > 0) {
      checks.push({
        target: "scale: lifeguard's cost grows no faster than Effect's bare hand-off (handoff-ceiling), within 1.5x",
        met: pairs.every((p) => p.x <= 1.5),
        detail: pairs.map((p) => `${p.config} ${p.x.toFixed(2)}x`).join(", ")
      })
    }
  }
  return checks.filter((c): c is Check => c !== undefined)
}

/** What "flat" allows: an O(1) queue stays within it, an O(n) one grows 10,000-fold from 10 to 100,000 waiters. */
export const flatLimit = 2
