import { afterAll, describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { execFile } from "node:child_process"
import * as Flags from "../scripts/start/flags.js"
import * as Postgres from "../scripts/start/postgres.js"
import * as Report from "../scripts/start/report.js"
import * as Scenario from "../scripts/start/scenario.js"
import { sharedServer } from "./utils/postgres.js"

const server = await sharedServer()
afterAll(() => server.stop())

const requiredKeys = [
  "workers",
  "poolSize",
  "operations",
  "successRate",
  "durationMs",
  "opsPerSec",
  "peakServerConnections",
  "peakWaiters",
  "p50WaitMs",
  "p99WaitMs"
] as const

const scenario = (workers: number, poolSize: number, operations: number, durationMs?: number): Scenario.Scenario => ({
  label: Scenario.label(workers, poolSize),
  workers,
  poolSize,
  operations,
  durationMs
})

describe("npm start: the scenario engine on PostgreSQL", () => {
  it.scopedLive("10 workers share a pool of 3: every operation succeeds and the server never sees more than 3", () =>
    Effect.gen(function*() {
      const backend = yield* Postgres.backend(server.url)
      const result = yield* Scenario.run(backend, scenario(10, 3, 8))

      expect(result.failed, JSON.stringify(result.errors)).toBe(0)
      expect(result.operations).toBe(80)
      expect(result.successRate).toBe(100)
      expect(result.serverSamples).toBeGreaterThan(0)
      expect(result.peakServerConnections).toBeGreaterThan(0)
      expect(result.peakServerConnections).toBeLessThanOrEqual(3)
      expect(result.peakPoolConnections).toBeLessThanOrEqual(3)
      // Ten workers cannot all hold one of three connections: some must have waited.
      expect(result.peakWaiters).toBeGreaterThan(0)
      // Two statements per operation, each its own checkout.
      expect(result.checkouts).toBe(160)
      expect(result.p99WaitMs).toBeGreaterThanOrEqual(result.p50WaitMs)
      expect(result.multiplexing).toBeCloseTo(10 / 3, 2)
      expect(Scenario.passed(result)).toBe(true)

      const json = JSON.parse(JSON.stringify([result])) as Array<Record<string, unknown>>
      expect(json).toHaveLength(1)
      for (const key of requiredKeys) expect(typeof json[0]![key], key).toBe("number")
      expect(json[0]).toMatchObject({ workers: 10, poolSize: 3, operations: 80, successRate: 100 })
    }))

  it.scopedLive("--duration runs operations until the time is up", () =>
    Effect.gen(function*() {
      const backend = yield* Postgres.backend(server.url)
      const result = yield* Scenario.run(backend, scenario(4, 2, 1, 300))
      expect(result.failed, JSON.stringify(result.errors)).toBe(0)
      expect(result.operations).toBeGreaterThan(4)
      expect(result.durationMs).toBeGreaterThanOrEqual(300)
      expect(result.peakServerConnections).toBeLessThanOrEqual(2)
    }))

  it.scopedLive("a failing operation is counted and named, and fails the verdict", () =>
    Effect.gen(function*() {
      const postgres = yield* Postgres.backend(server.url)
      const broken: Scenario.Backend = {
        name: "broken",
        open: (s, onEvent) =>
          Effect.map(postgres.open(s, onEvent), (session) => ({
            ...session,
            operation: (worker, index) =>
              worker === 0 && index === 1 ? Effect.fail(new Error("boom")) : session.operation(worker, index)
          }))
      }
      const result = yield* Scenario.run(broken, scenario(3, 2, 4))
      expect(result.failed).toBe(1)
      expect(result.successRate).toBe(91.67)
      expect(result.errors).toStrictEqual([{ message: "boom", count: 1 }])
      expect(Scenario.passed(result)).toBe(false)
    }))
})

describe("npm start: the verdict", () => {
  const ok: Scenario.ScenarioResult = {
    backend: "postgres",
    scenario: "Heavy",
    workers: 20,
    poolSize: 10,
    operations: 200,
    succeeded: 200,
    failed: 0,
    successRate: 100,
    durationMs: 100,
    opsPerSec: 2000,
    multiplexing: 2,
    peakServerConnections: 10,
    serverSamples: 5,
    peakPoolConnections: 10,
    peakWaiters: 10,
    checkouts: 400,
    p50WaitMs: 1,
    p99WaitMs: 5,
    errors: []
  }

  it("fails when the server saw more connections than the pool size, or was never asked", () => {
    expect(Scenario.passed(ok)).toBe(true)
    expect(Scenario.passed({ ...ok, peakServerConnections: 11 })).toBe(false)
    expect(Scenario.passed({ ...ok, serverSamples: 0 })).toBe(false)
  })

  it("says why a scenario failed, and tabulates every scenario", () => {
    expect(Report.problems([ok])).toStrictEqual([])
    const failing = { ...ok, succeeded: 198, failed: 2, successRate: 99, errors: [{ message: "boom", count: 2 }] }
    expect(Report.problems([failing, { ...ok, peakServerConnections: 12 }])).toStrictEqual([
      "postgres Heavy (20 workers): 2 of 200 operations failed: boom (x2)",
      "postgres Heavy (20 workers): the server listed 12 connections from a pool of 10"
    ])
    const table = Report.table([ok, failing]).split("\n")
    expect(table).toHaveLength(4)
    expect(table[0]).toMatch(/Success .* Server peak .* Peak waiters .* Wait p50 .* Wait p99/)
    expect(table[2]).toMatch(/\| Heavy .* 100% .* 2:1 .* 10\/10 /)
    expect(table[3]).toContain(" 99% ")
  })

  it("names the loads as the pooler document does", () => {
    expect([5, 10, 11, 15, 20, 30, 100].map((w) => Scenario.label(w, 10))).toStrictEqual([
      "Under limit",
      "At limit",
      "Just over",
      "Moderate",
      "Heavy",
      "Extreme",
      "Ultra"
    ])
  })

  it("percentiles use the nearest rank", () => {
    const sorted = Array.from({ length: 100 }, (_, i) => i + 1)
    expect(Scenario.percentile(sorted, 50)).toBe(50)
    expect(Scenario.percentile(sorted, 99)).toBe(99)
    expect(Scenario.percentile([7], 99)).toBe(7)
    expect(Scenario.percentile([], 50)).toBe(0)
  })
})

describe("npm start: flags", () => {
  it("defaults to the pooler document's scenarios", () => {
    expect(Flags.parse([])).toStrictEqual(Flags.defaults)
    expect(Flags.defaults.poolSize).toBe(10)
    expect(Flags.defaults.workers).toStrictEqual([5, 10, 11, 15, 20, 30, 100])
  })

  it("reads every flag, with a space or an equals sign", () => {
    expect(Flags.parse(["--pool-size", "3", "--workers=1,2", "--operations", "7", "--json"])).toStrictEqual({
      ...Flags.defaults,
      poolSize: 3,
      workers: [1, 2],
      operations: 7,
      json: true
    })
    expect(Flags.parse(["--duration", "1.5s"]).durationMs).toBe(1500)
    expect(Flags.parse(["--duration=250ms"]).durationMs).toBe(250)
    expect(Flags.parse(["--duration", "2"]).durationMs).toBe(2000)
    expect(Flags.parse(["--duration", "1m"]).durationMs).toBe(60_000)
  })

  it("rejects what it cannot use, saying what it wants", () => {
    expect(() => Flags.parse(["--pool-size", "0"])).toThrow(/at least 1, got "0"/)
    expect(() => Flags.parse(["--workers", "5,x"])).toThrow(/--workers wants a whole number/)
    expect(() => Flags.parse(["--duration", "soon"])).toThrow(/500ms, 5s or 1m/)
    expect(() => Flags.parse(["--operations", "5", "--duration", "1s"])).toThrow(/exclude each other/)
    expect(() => Flags.parse(["--pool-size"])).toThrow(/needs a value/)
    expect(() => Flags.parse(["--fast"])).toThrow(/unknown option "--fast"/)
  })
})

describe("npm start: the command", () => {
  it("--json prints only one JSON array on stdout and exits 0", async () => {
    const { code, stdout, stderr } = await new Promise<{ code: number | null; stdout: string; stderr: string }>(
      (resolve) => {
        const child = execFile(
          process.execPath,
          ["--import", "tsx", "scripts/start.ts", "--json", "--pool-size", "2", "--workers", "1,4", "--operations", "3"],
          { env: { ...process.env, DATABASE_URL: server.url }, timeout: 60_000 },
          (_error, stdout, stderr) => resolve({ code: child.exitCode, stdout, stderr })
        )
      }
    )
    expect(code, stderr).toBe(0)
    const results = JSON.parse(stdout) as Array<Record<string, unknown>>
    // MongoDB rows follow when a server can be had (MONGODB_URL, else FerretDB built with Go).
    expect(results.map((r) => [r.backend, r.workers, r.poolSize, r.operations, r.successRate])).toStrictEqual([
      ["postgres", 1, 2, 3, 100],
      ["postgres", 4, 2, 12, 100],
      ["mongodb", 1, 2, 3, 100],
      ["mongodb", 4, 2, 12, 100]
    ])
    for (const r of results) expect(r.peakServerConnections as number).toBeLessThanOrEqual(2)
  })
})
