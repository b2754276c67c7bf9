/**
 * What `npm start` prints: a progress line while a scenario runs, a table at the end.
 */
import type { Progress, ScenarioResult } from "./scenario.js"
import { passed } from "./scenario.js"

const count = new Intl.NumberFormat("en-US")
const rate = new Intl.NumberFormat("en-US", { minimumFractionDigits: 1, maximumFractionDigits: 1 })

const seconds = (ms: number): string => (ms < 1000 ? `${Math.round(ms)}ms` : `${(ms / 1000).toFixed(2)}s`)
// Pool events carry whole milliseconds today; no decimals are invented for them.
const millis = (ms: number): string => `${Math.round(ms * 100) / 100}ms`

export const progressLine = (p: Progress): string => {
  const planned = p.scenario.durationMs === undefined
    ? `/${count.format(p.scenario.workers * p.scenario.operations)}`
    : ""
  const failures = p.failed > 0 ? `, ${count.format(p.failed)} failed` : ""
  return `${p.scenario.label.padEnd(11)} ${String(p.scenario.workers).padStart(4)} workers / ${p.scenario.poolSize} connections: ` +
    `${count.format(p.done)}${planned} ops${failures}, ${rate.format(p.opsPerSec)} ops/s, ` +
    `waiters ${p.waiting}, ${seconds(p.elapsedMs)}`
}

const columns: ReadonlyArray<readonly [string, (r: ScenarioResult) => string]> = [
  ["Scenario", (r) => r.scenario],
  ["Workers", (r) => String(r.workers)],
  ["Pool", (r) => String(r.poolSize)],
  ["Ops", (r) => count.format(r.operations)],
  ["Success", (r) => `${r.successRate}%`],
  ["Duration", (r) => seconds(r.durationMs)],
  ["ops/s", (r) => rate.format(r.opsPerSec)],
  ["Multiplexing", (r) => `${r.multiplexing}:1`],
  ["Server peak", (r) => `${r.peakServerConnections}/${r.poolSize}`],
  ["Peak waiters", (r) => String(r.peakWaiters)],
  ["Wait p50", (r) => millis(r.p50WaitMs)],
  ["Wait p99", (r) => millis(r.p99WaitMs)]
]

/** A Markdown table, one row per scenario, readable in a terminal and pasteable into an issue. */
export const table = (results: ReadonlyArray<ScenarioResult>): string => {
  const rows = [columns.map(([title]) => title), ...results.map((r) => columns.map(([, cell]) => cell(r)))]
  const widths = columns.map((_, i) => Math.max(...rows.map((row) => row[i]!.length)))
  const line = (row: ReadonlyArray<string>) =>
    `| ${row.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))).join(" | ")} |`
  const rule = `|${widths.map((w, i) => (i === 0 ? "-".repeat(w + 2) : `${"-".repeat(w + 1)}:`)).join("|")}|`
  return [line(rows[0]!), rule, ...rows.slice(1).map(line)].join("\n")
}

/** One line per scenario that did not pass, saying why. */
export const problems = (results: ReadonlyArray<ScenarioResult>): ReadonlyArray<string> =>
  results.filter((r) => !passed(r)).map((r) => {
    const why: Array<string> = []
    if (r.operations === 0) why.push("no operation ran")
    if (r.failed > 0) {
      why.push(
        `${count.format(r.failed)} of ${count.format(r.operations)} operations failed: ` +
          r.errors.map((e) => `${e.message} (x${e.count})`).join("; ")
      )
    }
    if (r.serverSamples === 0) why.push("the server could not be asked for its connections")
    if (r.peakServerConnections > r.poolSize) {
      why.push(`the server listed ${r.peakServerConnections} connections from a pool of ${r.poolSize}`)
    }
    return `${r.backend} ${r.scenario} (${r.workers} workers): ${why.join("; ")}`
  })
