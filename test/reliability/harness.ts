/**
 * The reliability scenarios' machinery, shared by test/reliability/*.test.ts and scripts/soak.ts:
 * an adapter-neutral `Subject` (what a scenario does to a pool), a load runner that records every
 * operation's outcome, catches hung fibers with a watchdog and keeps acknowledged writes, and the
 * checks every scenario ends with (writes found once, nothing leaked).
 *
 * A MongoDB version of the scenarios is another `Adapter`: the scenarios only use `Subject`.
 */
import { createHash } from "node:crypto"
import { mkdirSync, writeFileSync } from "node:fs"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"
import * as Reactivity from "@effect/experimental/Reactivity"
import { Chunk, Duration, Effect, Exit, Fiber, Option, Stream } from "effect"
import type { Scope } from "effect"
import type { PoolStats } from "../../src/Pool.js"
import type { Settings } from "../../src/PoolConfig.js"
import type { PoolEvent } from "../../src/PoolEvent.js"
import { PgPool } from "../../src/pg/index.js"
import { adminQuery, backendsOf } from "../utils/postgres.js"

/** What a scenario does to a pool, whatever the database behind it. */
export interface Subject {
  /** One cheap round trip. */
  readonly read: Effect.Effect<void, unknown>
  /** One acknowledged insert of a client-generated id. */
  readonly write: (id: string) => Effect.Effect<void, unknown>
  /** A statement the server rejects (a bad input): must fail with a typed error, and harm nothing. */
  readonly bad: Effect.Effect<void, unknown>
  /** A server-side wait of `ms`, for work in flight when a fault lands. */
  readonly slow: (ms: number) => Effect.Effect<void, unknown>
  /** `rows` generated rows in one result, checked whole (resolves to the row count). */
  readonly big: (rows: number) => Effect.Effect<number, unknown>
  /** The same rows as a stream, checked whole. */
  readonly stream: (rows: number) => Effect.Effect<number, unknown>
  /** A checkout and one round trip on the connection; `granted` runs when the connection is handed over. */
  readonly roundTrip: (granted: () => void) => Effect.Effect<void, unknown>
  readonly stats: Effect.Effect<PoolStats>
}

export interface Target {
  readonly host: string
  readonly port: number
}

export interface Adapter {
  readonly name: string
  /** Prepares the server (the write table), talking to it directly at `url`. */
  readonly prepare: (url: string) => Promise<void>
  /** A pool reaching the server through `target` (the proxy), in the current scope. */
  readonly make: (
    url: string,
    target: Target,
    settings: Settings & { readonly name: string },
    onEvent: (event: PoolEvent) => void
  ) => Effect.Effect<Subject, never, Scope.Scope>
  /** How many times each id of `run` is stored, read directly at `url`. */
  readonly stored: (url: string, run: string) => Promise<Map<string, number>>
  /** The server's connections from pool `name`, read directly at `url`. */
  readonly connections: (url: string, name: string) => Promise<number>
  /** A short name for an error, or undefined when it is not a typed error. */
  readonly classify: (error: unknown) => string | undefined
}

// --- PostgreSQL ------------------------------------------------------------

const md5 = (text: string) => createHash("md5").update(text).digest("hex")

const checkRows = (rows: ReadonlyArray<{ readonly i: number; readonly h: string }>, expected: number) => {
  if (rows.length !== expected) throw new Error(`expected ${expected} rows, got ${rows.length}`)
  rows.forEach((row, index) => {
    if (row.i !== index + 1 || row.h !== md5(String(index + 1))) throw new Error(`row ${index + 1} arrived corrupted`)
  })
  return rows.length
}

const sqlErrorCode = (error: { readonly cause?: unknown }): string => {
  const cause = error.cause as { readonly code?: unknown; readonly message?: unknown } | undefined
  if (typeof cause?.code === "string") return cause.code
  const message = typeof cause?.message === "string" ? cause.message : ""
  if (message.includes("Connection terminated")) return "terminated"
  if (message.includes("not queryable")) return "not queryable"
  if (message.includes("did not stop within") || message.includes("did not close within")) return "cancel timeout"
  return "other"
}

export const pgAdapter: Adapter = {
  name: "postgres",
  prepare: async (url) => {
    // No unique key on purpose: a write the pool sent twice must show up as a duplicate, not as an error.
    await adminQuery(url, "CREATE TABLE IF NOT EXISTS lifeguard_reliability (id text NOT NULL, run text NOT NULL)")
  },
  make: (url, target, settings, onEvent) =>
    Effect.gen(function*() {
      const through = new URL(url)
      through.hostname = target.host
      through.port = String(target.port)
      const client = yield* PgPool.make({ ...settings, url: through.toString(), onEvent }).pipe(Effect.orDie)
      const sql = client
      const rows = (n: number) => sql<{ i: number; h: string }>`SELECT i::int AS i, md5(i::text) AS h FROM generate_series(1, ${n}::int) AS i`
      return {
        read: Effect.asVoid(sql`SELECT 1`),
        write: (id) => Effect.asVoid(sql`INSERT INTO lifeguard_reliability (id, run) VALUES (${id}, ${settings.name})`),
        bad: Effect.asVoid(sql`SELECT 1 / (random() * 0)::int`),
        slow: (ms) => Effect.asVoid(sql`SELECT pg_sleep(${ms / 1000})`),
        big: (n) => Effect.map(rows(n), (result) => checkRows(result, n)),
        stream: (n) =>
          Effect.map(Stream.runCollect(rows(n).stream), (chunk) => checkRows(Chunk.toReadonlyArray(chunk), n)),
        roundTrip: (granted) =>
          client.pool.use((connection) =>
            Effect.zipRight(
              Effect.sync(granted),
              Effect.tryPromise({ try: () => connection.query("SELECT 1"), catch: (cause) => cause as Error })
            )
          ).pipe(Effect.asVoid),
        stats: client.pool.stats
      } satisfies Subject
    }).pipe(Effect.provide(Reactivity.layer)),
  stored: async (url, run) => {
    const rows = await adminQuery<{ id: string; n: number }>(
      url,
      "SELECT id, count(*)::int AS n FROM lifeguard_reliability WHERE run = $1 GROUP BY id",
      [run]
    )
    return new Map(rows.map((row) => [row.id, row.n]))
  },
  connections: async (url, name) => (await backendsOf(url, name)).length,
  classify: (error) => {
    if (typeof error !== "object" || error === null || !("_tag" in error)) return undefined
    const tagged = error as { readonly _tag: string; readonly cause?: unknown }
    if (tagged._tag === "SqlError") {
      const pool = PgPool.poolError(tagged as never)
      return Option.isSome(pool) ? pool.value._tag : `SqlError(${sqlErrorCode(tagged)})`
    }
    return tagged._tag
  }
}

// --- load ----------------------------------------------------------------

export interface LoadReport {
  readonly ops: number
  readonly ok: number
  readonly errors: Record<string, number>
  /** Errors that were not typed (no _tag): each is a failure of the pool's contract. */
  readonly untyped: Array<string>
  /** Operations still running at the watchdog's deadline. */
  readonly hung: number
  readonly maxMs: number
  readonly acked: Set<string>
  readonly attemptedWrites: number
  /** Operations started, by kind. */
  readonly tried: Record<string, number>
  /** Ops that succeeded, by second since the load started. */
  readonly okPerSecond: Array<number>
}

export type Op = "read" | "write" | "bad" | "big" | "stream" | "slow"

export interface LoadOptions {
  readonly fibers: number
  /** Picks the next operation of a fiber; `seq` counts that fiber's operations. */
  readonly pick: (fiber: number, seq: number) => Op
  readonly run: string
  /** Bound on any one operation; past it the operation counts as hung. */
  readonly watchdog: Duration.DurationInput
  /** A deadline of the caller's own on every operation (as an application would set). */
  readonly deadline?: Duration.DurationInput | undefined
  readonly bigRows?: number
  readonly slowMs?: number
}

/** A running load: `stop` ends it and resolves to its report once every fiber is done. */
export interface Load {
  readonly stop: Effect.Effect<LoadReport>
  /** A copy of the counters so far (for the soak's progress lines). */
  readonly snapshot: Effect.Effect<LoadReport>
  /** Resolves once an operation that started after this call succeeded. */
  readonly nextOk: Effect.Effect<void>
}

export class TimedOut {
  readonly _tag = "Deadline"
}

export const startLoad = (
  subject: Subject,
  adapter: Adapter,
  options: LoadOptions
): Effect.Effect<Load, never, Scope.Scope> =>
  Effect.gen(function*() {
    const startedAt = Date.now()
    let running = true
    let ops = 0
    let ok = 0
    let hung = 0
    let maxMs = 0
    let attemptedWrites = 0
    let okSince: Array<{ after: number; resolve: () => void }> = []
    const errors: Record<string, number> = {}
    const untyped: Array<string> = []
    const acked = new Set<string>()
    const tried: Record<string, number> = {}
    const okPerSecond: Array<number> = []
    const watchdog = Duration.toMillis(Duration.decode(options.watchdog))

    const operation = (fiber: number, seq: number): Effect.Effect<void, unknown> => {
      const op = options.pick(fiber, seq)
      tried[op] = (tried[op] ?? 0) + 1
      switch (op) {
        case "read":
          return subject.read
        case "bad":
          // Expected to fail: a success would mean the bad input went unnoticed.
          return Effect.flatMap(Effect.either(subject.bad), (either) =>
            either._tag === "Left" && adapter.classify(either.left)?.startsWith("SqlError(22")
              ? Effect.void
              : either._tag === "Left" ? Effect.fail(either.left) : Effect.die(new Error("a bad input succeeded")))
        case "big":
          return subject.big(options.bigRows ?? 2_000)
        case "stream":
          return subject.stream(options.bigRows ?? 2_000)
        case "slow":
          return subject.slow(options.slowMs ?? 200)
        case "write": {
          const id = `${options.run}-${fiber}-${seq}`
          attemptedWrites++
          return Effect.tap(subject.write(id), () => Effect.sync(() => acked.add(id)))
        }
      }
    }

    const record = (ms: number, exit: Exit.Exit<void, unknown> | undefined, started: number) => {
      ops++
      maxMs = Math.max(maxMs, ms)
      if (exit === undefined) {
        hung++
        return
      }
      if (Exit.isSuccess(exit)) {
        ok++
        const second = Math.floor((Date.now() - startedAt) / 1000)
        while (okPerSecond.length <= second) okPerSecond.push(0)
        okPerSecond[second]!++
        if (okSince.length > 0) {
          okSince = okSince.filter((waiter) => {
            if (started < waiter.after) return true
            waiter.resolve()
            return false
          })
        }
        return
      }
      const failure = Option.getOrUndefined(Exit.causeOption(exit).pipe(Option.flatMap((cause) =>
        cause._tag === "Fail" ? Option.some(cause.error) : Option.none()
      )))
      const name = failure === undefined
        ? (Exit.isInterrupted(exit) ? "interrupted" : "defect")
        : adapter.classify(failure)
      if (name === undefined || name === "defect") {
        untyped.push(String(failure ?? Exit.causeOption(exit)))
      }
      const key = name ?? "untyped"
      errors[key] = (errors[key] ?? 0) + 1
    }

    const deadline = options.deadline
    const fiberLoop = (fiber: number) =>
      Effect.gen(function*() {
        for (let seq = 0; running; seq++) {
          const started = Date.now()
          const base = operation(fiber, seq)
          const bounded = deadline === undefined
            ? base
            : Effect.timeoutFail(base, { duration: deadline, onTimeout: () => new TimedOut() })
          // Disconnected: an operation that ignores interruption still lets the watchdog report it.
          const exit = yield* Effect.exit(bounded).pipe(Effect.disconnect, Effect.timeoutOption(watchdog))
          record(Date.now() - started, Option.getOrUndefined(exit), started)
          yield* Effect.yieldNow()
        }
      })

    const fibers = yield* Effect.forEach(
      Array.from({ length: options.fibers }, (_, i) => i),
      (i) => Effect.forkScoped(fiberLoop(i))
    )
    const snapshot = Effect.sync((): LoadReport => ({
      ops,
      ok,
      errors: { ...errors },
      untyped: [...untyped],
      hung,
      maxMs,
      acked: new Set(acked),
      attemptedWrites,
      tried: { ...tried },
      okPerSecond: [...okPerSecond]
    }))
    return {
      snapshot,
      nextOk: Effect.async<void>((resume) => {
        okSince.push({ after: Date.now(), resolve: () => resume(Effect.void) })
      }),
      stop: Effect.gen(function*() {
        running = false
        // Every fiber ends its current operation within the watchdog; one that does not is hung.
        const joined = yield* Fiber.joinAll(fibers).pipe(Effect.timeoutOption(watchdog + 5_000))
        if (Option.isNone(joined)) hung += options.fibers
        return yield* snapshot
      })
    }
  })

// --- checks -------------------------------------------------------------

export interface WriteCheck {
  readonly acknowledged: number
  readonly found: number
  readonly lost: Array<string>
  readonly duplicated: Array<string>
  /** Writes that committed although their caller saw an error (the ack was lost): allowed, counted. */
  readonly unacknowledgedCommitted: number
}

export const checkWrites = async (adapter: Adapter, url: string, run: string, acked: Set<string>): Promise<WriteCheck> => {
  const stored = await adapter.stored(url, run)
  const lost = [...acked].filter((id) => !stored.has(id))
  const duplicated = [...stored].filter(([, n]) => n > 1).map(([id]) => id)
  let unacknowledgedCommitted = 0
  for (const id of stored.keys()) if (!acked.has(id)) unacknowledgedCommitted++
  return {
    acknowledged: acked.size,
    found: [...acked].filter((id) => stored.has(id)).length,
    lost,
    duplicated,
    unacknowledgedCommitted
  }
}

/** Polls `connections` until the server sees none from pool `name` (bounded). */
export const serverConnectionsAfterClose = async (adapter: Adapter, url: string, name: string, withinMs = 10_000) => {
  const until = Date.now() + withinMs
  for (;;) {
    const n = await adapter.connections(url, name)
    if (n === 0 || Date.now() > until) return n
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
}

/** Counts pool events by tag. */
export const eventCounter = () => {
  const counts: Record<string, number> = {}
  return {
    counts,
    onEvent: (event: PoolEvent) => {
      counts[event._tag] = (counts[event._tag] ?? 0) + 1
    }
  }
}

/** Polls `effect` until it succeeds, for at most `withinMs`; resolves to the time it took. */
export const timeToRecover = (effect: Effect.Effect<unknown, unknown>, withinMs: number) =>
  Effect.gen(function*() {
    const started = Date.now()
    for (;;) {
      const exit = yield* Effect.exit(Effect.timeout(effect, withinMs))
      if (Exit.isSuccess(exit)) return Date.now() - started
      if (Date.now() - started > withinMs) return Number.POSITIVE_INFINITY
      yield* Effect.sleep("25 millis")
    }
  })

/** One scenario's figures, as docs/reliability.md reports them. */
export interface ScenarioResult {
  readonly scenario: string
  readonly adapter: string
  readonly load: string
  readonly faults: string
  readonly badInputs: number
  readonly ops: number
  readonly ok: number
  readonly errors: Record<string, number>
  readonly writesAcknowledged: number
  readonly writesFound: number
  readonly writesDuplicated: number
  readonly connectionsLeaked: number
  readonly fibersHung: number
  readonly recoveryMs: number | null
  readonly notes: string
}

const resultsDir = Path.join(Path.dirname(fileURLToPath(import.meta.url)), "../../.tmp/reliability")

/** Writes a scenario's result where scripts/reliability-report.ts reads it. */
export const recordResult = (result: ScenarioResult) => {
  mkdirSync(resultsDir, { recursive: true })
  writeFileSync(Path.join(resultsDir, `${result.adapter}-${result.scenario}.json`), JSON.stringify(result, null, 2))
}

export const seeded = (seed: number) => {
  // mulberry32: small, and a seed printed in a failure replays the same mix.
  let state = seed >>> 0
  return () => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

export const sleep = (ms: number) => Effect.sleep(Duration.millis(ms))

/** A seeded mix of operations: mostly reads and writes, some slow, large and bad ones. */
export const mix = (seed: number, weights: Partial<Record<Op, number>> = {}) => {
  const table: Array<[Op, number]> = Object.entries({ read: 50, write: 30, slow: 8, bad: 5, big: 4, stream: 3, ...weights }) as never
  const total = table.reduce((sum, [, w]) => sum + w, 0)
  const random = seeded(seed)
  return (): Op => {
    let r = random() * total
    for (const [op, w] of table) if ((r -= w) < 0) return op
    return "read"
  }
}

export interface ScenarioRun<X> {
  readonly report: LoadReport
  readonly stats: PoolStats
  /** Server connections from the pool after its scope closed, plus connections still checked out at the end. */
  readonly leaked: number
  readonly writes: WriteCheck
  readonly events: Record<string, number>
  readonly extra: X
}

/**
 * One scenario: a pool through `target`, a load on it, `body` injecting faults meanwhile; then the
 * load stops, the pool's scope closes, and writes and server connections are checked.
 */
export const runScenario = <X>(options: {
  readonly adapter: Adapter
  readonly url: string
  readonly target: Target
  readonly settings: Settings & { readonly name: string }
  readonly load: Omit<LoadOptions, "run">
  readonly body: (subject: Subject, load: Load) => Effect.Effect<X, unknown>
}): Effect.Effect<ScenarioRun<X>, unknown> =>
  Effect.gen(function*() {
    const { adapter, settings, url } = options
    const events = eventCounter()
    const inside = yield* Effect.scoped(Effect.gen(function*() {
      const subject = yield* adapter.make(url, options.target, settings, events.onEvent)
      const load = yield* startLoad(subject, adapter, { ...options.load, run: settings.name })
      const extra = yield* options.body(subject, load)
      const report = yield* load.stop
      return { extra, report, stats: yield* subject.stats }
    }))
    const onServer = yield* Effect.promise(() => serverConnectionsAfterClose(adapter, url, settings.name))
    const writes = yield* Effect.promise(() => checkWrites(adapter, url, settings.name, inside.report.acked))
    return { ...inside, leaked: onServer + inside.stats.inUse, writes, events: events.counts }
  })

/** The figures every scenario reports. */
export const resultOf = (
  run: ScenarioRun<unknown>,
  adapter: Adapter,
  fields: { scenario: string; load: string; faults: string; recoveryMs: number | null; notes: string }
): ScenarioResult => ({
  ...fields,
  adapter: adapter.name,
  badInputs: run.report.tried.bad ?? 0,
  ops: run.report.ops,
  ok: run.report.ok,
  errors: run.report.errors,
  writesAcknowledged: run.writes.acknowledged,
  writesFound: run.writes.found,
  writesDuplicated: run.writes.duplicated.length,
  connectionsLeaked: run.leaked,
  fibersHung: run.report.hung
})
