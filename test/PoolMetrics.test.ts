import * as OtelMetrics from "@effect/opentelemetry/Metrics"
import * as OtelResource from "@effect/opentelemetry/Resource"
import { PrometheusExporter, PrometheusSerializer } from "@opentelemetry/exporter-prometheus"
import { describe, expect, it } from "@effect/vitest"
import { Duration, Effect, Exit, Fiber, Layer, Metric, MetricState, Option, Scope, TestClock } from "effect"
import type { MetricPair } from "effect"
import { PoolMetrics } from "../src/index.js"
import { holdConnection, makeTestPool, settle } from "./utils/pool.js"

/** The series of one metric for one pool in a snapshot, keyed by their other tags. */
const seriesOf = (snapshot: ReadonlyArray<MetricPair.MetricPair.Untyped>, name: string, pool: string) => {
  const found = new Map<string, { readonly tags: Record<string, string>; readonly state: unknown }>()
  for (const { metricKey, metricState } of snapshot) {
    if (metricKey.name !== name) continue
    const tags = Object.fromEntries(metricKey.tags.map((label) => [label.key, label.value]))
    if (tags[PoolMetrics.poolName] !== pool) continue
    const { [PoolMetrics.poolName]: _, unit: __, ...rest } = tags
    found.set(JSON.stringify(rest), { tags, state: metricState })
  }
  return found
}

const counterOf = (snapshot: ReadonlyArray<MetricPair.MetricPair.Untyped>, name: string, pool: string, extra = {}) => {
  const state = seriesOf(snapshot, name, pool).get(JSON.stringify(extra))?.state
  if (!MetricState.isCounterState(state)) throw new Error(`no counter ${name} ${JSON.stringify(extra)} for ${pool}`)
  return state.count
}

const histogramOf = (snapshot: ReadonlyArray<MetricPair.MetricPair.Untyped>, name: string, pool: string) => {
  const state = seriesOf(snapshot, name, pool).get("{}")?.state
  if (!MetricState.isHistogramState(state)) throw new Error(`no histogram ${name} for ${pool}`)
  return state
}

/** The observations at or under a bucket bound (Effect's histogram buckets are cumulative). */
const cumulativeAt = (state: MetricState.MetricState.Histogram, bound: number): number =>
  Option.getOrThrow(Option.fromNullable(state.buckets.find(([upper]) => Math.abs(upper - bound) < 1e-12)))[1]

describe("PoolMetrics", () => {
  it.scoped("a scripted load shows in a snapshot under OpenTelemetry's names, attributes and units", () =>
    Effect.gen(function*() {
      const name = "otel-load"
      const { pool } = yield* makeTestPool({
        name,
        maxSize: 2,
        minIdle: 1,
        connectDelay: "5 millis",
        acquireTimeout: "100 millis",
        maintenanceInterval: "1 hour"
      })
      // The minIdle set-up and a second one for the second holder, 5 ms each.
      const a = yield* holdConnection(pool)
      const b = yield* holdConnection(pool)
      // Released before the pool drains, even when an assertion fails.
      yield* Effect.addFinalizer(() => b.release)
      yield* settle
      yield* TestClock.adjust("5 millis")
      yield* a.connection
      yield* b.connection

      // A third caller waits the whole acquireTimeout.
      const late = yield* Effect.fork(Effect.exit(Effect.scoped(pool.get)))
      yield* settle
      let snapshot = yield* Metric.snapshot
      expect(counterOf(snapshot, "db.client.connection.pending_requests", name)).toBe(1)
      yield* TestClock.adjust("100 millis")
      expect(Exit.isFailure(yield* Fiber.join(late))).toBe(true)

      // A fourth is served 0.25 ms after it queued, when a comes back.
      const quick = yield* Effect.fork(Effect.scoped(pool.get))
      yield* settle
      yield* TestClock.adjust(Duration.micros(250n))
      yield* a.release
      yield* Fiber.join(quick)

      snapshot = yield* Metric.snapshot
      const counts = seriesOf(snapshot, "db.client.connection.count", name)
      expect([...counts.values()].map((s) => s.tags).sort((x, y) => x[PoolMetrics.state]!.localeCompare(y[PoolMetrics.state]!)))
        .toStrictEqual([
          { [PoolMetrics.poolName]: name, [PoolMetrics.state]: "idle", unit: "{connection}" },
          { [PoolMetrics.poolName]: name, [PoolMetrics.state]: "used", unit: "{connection}" }
        ])
      expect(counterOf(snapshot, "db.client.connection.count", name, { [PoolMetrics.state]: "idle" })).toBe(1)
      expect(counterOf(snapshot, "db.client.connection.count", name, { [PoolMetrics.state]: "used" })).toBe(1)
      expect(counterOf(snapshot, "db.client.connection.max", name)).toBe(2)
      expect(counterOf(snapshot, "db.client.connection.idle.max", name)).toBe(2)
      expect(counterOf(snapshot, "db.client.connection.idle.min", name)).toBe(1)
      expect(counterOf(snapshot, "db.client.connection.pending_requests", name)).toBe(0)
      expect(counterOf(snapshot, "db.client.connection.timeouts", name)).toBe(1)
      expect(counterOf(snapshot, "lifeguard.pool.connection.pending", name)).toBe(0)
      expect(counterOf(snapshot, "lifeguard.pool.checkouts", name)).toBe(3)
      expect(counterOf(snapshot, "lifeguard.pool.checkout.failures", name, { [PoolMetrics.reason]: "timeout" })).toBe(1)
      // The timed-out waiter is not also counted as one that gave up.
      expect([...seriesOf(snapshot, "lifeguard.pool.checkout.failures", name).keys()])
        .toStrictEqual([JSON.stringify({ [PoolMetrics.reason]: "timeout" })])
      expect(counterOf(snapshot, "lifeguard.pool.connection.created", name)).toBe(2)

      const create = histogramOf(snapshot, "db.client.connection.create_time", name)
      expect(create.count).toBe(2)
      expect(create.sum).toBeCloseTo(0.01, 9)
      expect([...seriesOf(snapshot, "db.client.connection.create_time", name).values()][0]!.tags.unit).toBe("s")

      // Waits: two for a 5 ms set-up each, the quick one 250 µs; buckets are cumulative.
      const wait = histogramOf(snapshot, "db.client.connection.wait_time", name)
      expect(wait.count).toBe(3)
      expect(wait.sum).toBeCloseTo(0.01025, 9)
      expect(cumulativeAt(wait, 0.00016)).toBe(0)
      expect(cumulativeAt(wait, 0.00032)).toBe(1)
      expect(cumulativeAt(wait, 0.00256)).toBe(1)
      expect(cumulativeAt(wait, 0.00512)).toBe(3)

      const use = histogramOf(snapshot, "db.client.connection.use_time", name)
      expect(use.count).toBe(2)
      expect(use.max).toBeCloseTo(0.10025, 9)
      // The quick checkout gave its connection back at once; a held its for 100.25 ms.
      expect(cumulativeAt(use, 0.00001)).toBe(1)
      expect(cumulativeAt(use, 0.08192)).toBe(1)
      expect(cumulativeAt(use, 0.16384)).toBe(2)
    }))

  it.scoped("set-up failures are counted by error type, and the limits leave with the pool", () =>
    Effect.gen(function*() {
      const name = "otel-failures"
      const scope = yield* Scope.make()
      const { factory, pool } = yield* Scope.extend(
        makeTestPool({ name, maxSize: 3, acquireTimeout: "1 second" }),
        scope
      )
      yield* factory.failNext(1)
      const got = yield* Effect.fork(Effect.scoped(pool.get))
      yield* settle
      yield* TestClock.adjust("1 second")
      yield* Fiber.await(got)
      let snapshot = yield* Metric.snapshot
      expect(counterOf(snapshot, "lifeguard.pool.connection.setup_failures", name, {
        [PoolMetrics.errorType]: "TestConnectError"
      })).toBe(1)
      expect(counterOf(snapshot, "db.client.connection.max", name)).toBe(3)

      yield* pool.clear()
      snapshot = yield* Metric.snapshot
      const generation = seriesOf(snapshot, "lifeguard.pool.generation", name).get("{}")?.state
      expect(MetricState.isGaugeState(generation) && generation.value).toBe(1)

      yield* Scope.close(scope, Exit.void)
      snapshot = yield* Metric.snapshot
      expect(counterOf(snapshot, "db.client.connection.max", name)).toBe(0)
      expect(counterOf(snapshot, "db.client.connection.count", name, { [PoolMetrics.state]: "idle" })).toBe(0)
      expect(counterOf(snapshot, "db.client.connection.count", name, { [PoolMetrics.state]: "used" })).toBe(0)
    }))

  it.scoped("exported through @effect/opentelemetry, Prometheus reads OpenTelemetry's names, types and units", () =>
    Effect.gen(function*() {
      // The exporter's own HTTP server stays off: the scrape body is what its serializer writes.
      const exporter = new PrometheusExporter({ preventServerStart: true })
      yield* Layer.build(
        OtelMetrics.layer(() => exporter).pipe(Layer.provide(OtelResource.layer({ serviceName: "lifeguard-test" })))
      )
      const { pool } = yield* makeTestPool({ name: "prom", maxSize: 4, connectDelay: "5 millis" })
      const got = yield* Effect.fork(Effect.scoped(pool.get))
      yield* settle
      yield* TestClock.adjust("5 millis")
      yield* Fiber.join(got)
      const { resourceMetrics } = yield* Effect.promise(() => exporter.collect())
      const scrape = new PrometheusSerializer().serialize(resourceMetrics)
      const sample = (name: string, labels: string) => {
        const line = scrape.split("\n").find((l) =>
          l.startsWith(`${name}{`) && l.includes(`db_client_connection_pool_name="prom"`) && l.includes(labels)
        )
        expect(line, `${name} ${labels} in the scrape`).toBeDefined()
        return Number(line!.slice(line!.lastIndexOf(" ") + 1))
      }
      expect(scrape).toContain("# TYPE db_client_connection_count gauge")
      expect(scrape).toContain("# UNIT db_client_connection_count {connection}")
      expect(sample("db_client_connection_count", `db_client_connection_state="idle"`)).toBe(1)
      expect(sample("db_client_connection_count", `db_client_connection_state="used"`)).toBe(0)
      expect(sample("db_client_connection_max", "")).toBe(4)
      expect(scrape).toContain("# TYPE db_client_connection_timeouts_total counter")
      expect(sample("db_client_connection_timeouts_total", "")).toBe(0)
      expect(scrape).toContain("# TYPE db_client_connection_wait_time histogram")
      expect(scrape).toContain("# UNIT db_client_connection_wait_time s")
      expect(sample("db_client_connection_wait_time_sum", "")).toBeCloseTo(0.005, 9)
      expect(sample("db_client_connection_wait_time_bucket", `le="0.00512"`)).toBe(1)
      expect(sample("db_client_connection_wait_time_bucket", `le="0.00256"`)).toBe(0)
      expect(scrape).toContain("# TYPE lifeguard_pool_checkouts_total counter")
      expect(sample("lifeguard_pool_checkouts_total", "")).toBe(1)
    }))

  it.scopedLive("on the live clock, durations keep their sub-millisecond part", () =>
    Effect.gen(function*() {
      const name = "otel-live"
      const { pool } = yield* makeTestPool({ name })
      for (let i = 0; i < 50; i++) yield* pool.use(() => Effect.yieldNow())
      const use = histogramOf(yield* Metric.snapshot, "db.client.connection.use_time", name)
      expect(use.count).toBe(50)
      // A millisecond clock would make every duration, and so the sum, a whole number of milliseconds.
      expect(Math.abs(use.sum * 1000 - Math.round(use.sum * 1000))).toBeGreaterThan(1e-6)
      expect(use.min).toBeLessThan(0.001)
    }))
})
