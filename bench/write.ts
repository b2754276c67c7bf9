/**
 * Writes a run to docs/bench/: results.json (the results with the machine and
 * versions they came from) and one SVG chart per figure. A run of some suites
 * replaces those suites' results and keeps the others.
 */
import { existsSync, readFileSync } from "node:fs"
import { mkdir, writeFile } from "node:fs/promises"
import * as Os from "node:os"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"
import { barChart, lineChart } from "./charts.js"
import type { Result } from "./measure.js"
import type { Check } from "./report.js"
import { markdown, targets } from "./report.js"

const root = Path.resolve(Path.dirname(fileURLToPath(import.meta.url)), "..")
const outDir = Path.join(root, "docs", "bench")

interface RunInfo {
  readonly suites: ReadonlyArray<string>
  readonly date: string
  readonly reps: number
  readonly seconds: number
}

interface ResultsFile {
  readonly machine: Record<string, unknown>
  readonly versions: Record<string, string>
  readonly runs: ReadonlyArray<RunInfo>
  readonly targets: ReadonlyArray<Check>
  readonly results: ReadonlyArray<Result>
}

const version = (name: string): string => {
  try {
    return (JSON.parse(readFileSync(Path.join(root, "node_modules", name, "package.json"), "utf8")) as { version: string }).version
  } catch {
    return "unknown"
  }
}

const machine = () => ({
  cpu: Os.cpus()[0]?.model ?? "unknown",
  cores: Os.cpus().length,
  memoryGiB: Math.round(Os.totalmem() / 2 ** 30),
  os: `${Os.type()} ${Os.release()} ${Os.arch()}`,
  node: process.version
})

const charts = (results: ReadonlyArray<Result>): Record<string, string> => {
  const of = (suite: string) => results.filter((r) => r.suite === suite)
  const contenders = (rs: ReadonlyArray<Result>) => [...new Set(rs.map((r) => r.contender))]
  const out: Record<string, string> = {}

  for (const yields of [false, true]) {
    const inmem = of("inmem").filter((r) => r.config.startsWith("max10-") && r.config.endsWith("-yield") === yields)
    if (inmem.length === 0) continue
    out[yields ? "inmem-throughput-yield.svg" : "inmem-throughput.svg"] = lineChart({
      title: yields
        ? "In-memory checkout, yield once while holding, return (pool of 10)"
        : "In-memory checkout + return, pool of 10",
      xLabel: "concurrent workers",
      yLabel: "checkouts per second",
      xLog: true,
      yLog: true,
      series: contenders(inmem).map((name) => ({
        name,
        points: inmem.filter((r) => r.contender === name && r.opsPerSec !== null)
          .map((r) => [Number(r.config.replace(/.*workers(\d+).*/, "$1")), r.opsPerSec!] as const)
      }))
    })
  }

  for (const config of [...new Set(of("fairness").map((r) => r.config))]) {
    const rs = of("fairness").filter((r) => r.config === config)
    out[`fairness-${config}.svg`] = barChart({
      title: `Checkout wait under contention (${config.replace("max", "pool of ").replace("-workers", ", ")} workers)`,
      yLabel: "wait (ms)",
      yLog: true,
      groups: rs.map((r) => ({
        label: r.contender,
        bars: [
          { name: "p50", value: r.p50Ms ?? NaN },
          { name: "p90", value: r.p90Ms ?? NaN },
          { name: "p99", value: r.p99Ms ?? NaN }
        ]
      }))
    })
  }

  const scale = of("scale")
  if (scale.length > 0) {
    out["scale.svg"] = lineChart({
      title: "Cost per checkout as the wait queue grows (pool of 10)",
      xLabel: "parked waiters",
      yLabel: "ns per checkout",
      xLog: true,
      yLog: true,
      series: contenders(scale).map((name) => ({
        name,
        points: scale.filter((r) => r.contender === name && r.nsPerCheckout !== undefined)
          .map((r) => [Number(r.config.replace("waiters", "")), r.nsPerCheckout!] as const)
      }))
    })
  }

  const memory = of("memory").filter((r) => r.bytesPerWaiter !== undefined)
  if (memory.length > 0) {
    out["memory.svg"] = barChart({
      title: `Heap per parked waiter (${memory[0]!.config.replace("waiters", "").replace(/000$/, "k").replace(/000k$/, "M")} waiters)`,
      yLabel: "bytes per waiter",
      groups: memory.map((r) => ({
        label: r.contender,
        bars: [
          { name: "the pool's own", value: r.bytesPerWaiter! },
          { name: "with the waiter", value: r.totalBytesPerWaiter ?? NaN }
        ]
      }))
    })
  }

  const pg = of("pg")
  if (pg.length > 0) {
    out["pg.svg"] = barChart({
      title: "PostgreSQL SELECT 1 over 10 connections",
      yLabel: "queries per second",
      groups: [...new Set(pg.map((r) => r.config))].map((config) => ({
        label: config,
        bars: pg.filter((r) => r.config === config).map((r) => ({ name: r.contender, value: r.opsPerSec ?? NaN }))
      }))
    })
  }
  return out
}

const references: Record<string, string> = { inmem: "effect-pool", pg: "pg-pool", mongodb: "mongodb-driver", memory: "effect-pool", scale: "effect-pool" }

/** Every table and the targets, generated, so the docs quote figures nobody retyped. */
const resultsMarkdown = (data: ResultsFile): string => {
  const suites = [...new Set(data.results.map((r) => r.suite))]
  const m = data.machine
  const parts = [
    "<!-- Generated by `npm run bench` (bench/write.ts) from results.json; do not edit. -->",
    "# Benchmark results",
    "",
    `Machine: ${m["cpu"]}, ${m["cores"]} cores, ${m["memoryGiB"]} GiB, ${m["os"]}, Node ${m["node"]}.`,
    `Versions: ${Object.entries(data.versions).map(([k, v]) => `${k} ${v}`).join(", ")}.`,
    "",
    "Runs: " + data.runs.map((r) => `${r.suites.join(", ")} on ${r.date} (${r.reps} repetitions, ${r.seconds} s)`).join("; ") + ".",
    "",
    "## Targets",
    "",
    ...data.targets.map((c) => `- ${c.met ? "**met**" : "**missed**"}: ${c.target}: ${c.detail}`),
    ""
  ]
  for (const suite of suites) {
    parts.push(`## ${suite}`, "", markdown(suite, references[suite], data.results.filter((r) => r.suite === suite)))
  }
  return parts.join("\n")
}

/**
 * Fills docs/benchmarks.md's generated blocks (`<!-- begin:NAME -->` ...
 * `<!-- end:NAME -->`): the run, the targets, and one table per suite.
 */
const fillGuide = async (data: ResultsFile): Promise<string> => {
  const guide = Path.join(root, "docs", "benchmarks.md")
  const m = data.machine
  const blocks: Record<string, string> = {
    run: [
      `Measured on ${m["cpu"]} (${m["cores"]} cores, ${m["memoryGiB"]} GiB), ${m["os"]}, Node ${m["node"]}; `,
      data.runs.map((r) => `${r.suites.join(", ")} on ${r.date} (${r.reps} repetitions, ${r.seconds} s)`).join("; "),
      `. Versions: ${Object.entries(data.versions).map(([k, v]) => `${k} ${v}`).join(", ")}.`
    ].join(""),
    targets: data.targets.map((c) => `- ${c.met ? "**met**" : "**missed**"}: ${c.target}: ${c.detail}`).join("\n")
  }
  for (const suite of [...new Set(data.results.map((r) => r.suite))]) {
    blocks[suite] = markdown(suite, references[suite], data.results.filter((r) => r.suite === suite))
  }
  let text = readFileSync(guide, "utf8")
  for (const [name, body] of Object.entries(blocks)) {
    text = text.replace(
      new RegExp(`<!-- begin:${name} -->[\\s\\S]*?<!-- end:${name} -->`),
      () => `<!-- begin:${name} -->\n${body.trim()}\n<!-- end:${name} -->`
    )
  }
  await writeFile(guide, text)
  return guide
}

/** Merges this run into docs/bench/results.json and redraws the charts; returns the files written. */
export const writeResults = async (
  results: ReadonlyArray<Result>,
  run: { readonly reps: number; readonly seconds: number }
): Promise<ReadonlyArray<string>> => {
  await mkdir(outDir, { recursive: true })
  const file = Path.join(outDir, "results.json")
  const previous: ResultsFile | undefined = existsSync(file) ? JSON.parse(readFileSync(file, "utf8")) : undefined
  const suites = [...new Set(results.map((r) => r.suite))]
  const merged = [...(previous?.results ?? []).filter((r) => !suites.includes(r.suite)), ...results]
  const data: ResultsFile = {
    machine: machine(),
    versions: Object.fromEntries(
      ["effect", "tarn", "generic-pool", "pg", "@effect/sql-pg", "@effect/sql", "tsx"].map((n) => [n, version(n)])
    ),
    runs: [
      ...(previous?.runs ?? []).filter((r) => !r.suites.every((s) => suites.includes(s))),
      { suites, date: new Date().toISOString(), reps: run.reps, seconds: Math.round(run.seconds) }
    ],
    targets: targets(merged),
    results: merged
  }
  const written = [file]
  await writeFile(file, JSON.stringify(data, null, 2) + "\n")
  const md = Path.join(outDir, "results.md")
  await writeFile(md, resultsMarkdown(data))
  written.push(md)
  for (const [name, svg] of Object.entries(charts(merged))) {
    const path = Path.join(outDir, name)
    await writeFile(path, svg)
    written.push(path)
  }
  written.push(await fillGuide(data))
  return written.map((p) => Path.relative(root, p))
}
