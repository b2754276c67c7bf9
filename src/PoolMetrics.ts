/**
 * The `Metric`s every pool keeps, named after OpenTelemetry's semantic
 * conventions for database client connection pools (`db.client.connection.*`),
 * with lifeguard's own extras under `lifeguard.pool.*`.
 *
 * Every series a pool writes is tagged `db.client.connection.pool.name=<name>`;
 * each metric also carries a constant `unit` tag (UCUM, as the conventions
 * give it), which `@effect/opentelemetry` reads as the instrument's unit. Read
 * one for a given pool with
 * `Metric.value(PoolMetrics.connectionCount.pipe(Metric.tagged(PoolMetrics.poolName, "db"), Metric.tagged(PoolMetrics.state, "idle")))`,
 * or export them all with any Effect metrics exporter.
 *
 * Times are seconds, measured with sub-millisecond precision where the
 * `Clock` gives it; the histograms' buckets start at 10 µs.
 *
 * @since 0.1.0
 */
import * as Metric from "effect/Metric"
import * as MetricBoundaries from "effect/MetricBoundaries"
import * as MetricKey from "effect/MetricKey"
import * as MetricLabel from "effect/MetricLabel"

/**
 * The attribute naming the pool on every series.
 *
 * @since 0.1.0
 * @category attributes
 */
export const poolName = "db.client.connection.pool.name"

/**
 * The attribute of {@link connectionCount}: `idle` or `used`.
 *
 * @since 0.1.0
 * @category attributes
 */
export const state = "db.client.connection.state"

/**
 * The attribute of {@link checkoutFailures} and {@link connectionsClosed}.
 *
 * @since 0.1.0
 * @category attributes
 */
export const reason = "lifeguard.reason"

/**
 * The attribute of {@link setupFailures}: the failure's `_tag` (or class name).
 *
 * @since 0.1.0
 * @category attributes
 */
export const errorType = "error.type"

/**
 * The histograms' bucket bounds, in seconds: 10 µs doubling up to about 21 s
 * (22 bounds, plus one bucket for longer), so a wait served in a fraction of a
 * millisecond lands in a bucket of its own.
 *
 * @since 0.1.0
 * @category boundaries
 */
export const timeBoundaries = MetricBoundaries.exponential({ start: 0.00001, factor: 2, count: 23 })

const withUnit = <Type extends MetricKey.MetricKey<any>>(key: Type, unit: string): Type =>
  MetricKey.taggedWithLabels(key, [MetricLabel.make("unit", unit)]) as Type

// An UpDownCounter in OpenTelemetry's terms: an Effect counter that is not incremental.
const upDown = (name: string, description: string, unit: string) =>
  withUnit(MetricKey.counter(name, { description }), unit)

const count = (name: string, description: string, unit: string) =>
  withUnit(MetricKey.counter(name, { description, incremental: true }), unit)

const seconds = (name: string, description: string) =>
  withUnit(MetricKey.histogram(name, timeBoundaries, description), "s")

/**
 * The metrics' keys, from which both the public metrics below and each
 * pool's own handles (resolved once, off the hot path) are made.
 *
 * @internal
 */
export const keys = {
  connectionCount: upDown(
    "db.client.connection.count",
    "The number of connections that are currently in state described by the state attribute",
    "{connection}"
  ),
  connectionIdleMax: upDown(
    "db.client.connection.idle.max",
    "The maximum number of idle open connections allowed",
    "{connection}"
  ),
  connectionIdleMin: upDown(
    "db.client.connection.idle.min",
    "The minimum number of idle open connections allowed",
    "{connection}"
  ),
  connectionMax: upDown(
    "db.client.connection.max",
    "The maximum number of open connections allowed",
    "{connection}"
  ),
  pendingRequests: upDown(
    "db.client.connection.pending_requests",
    "The number of current pending requests for an open connection",
    "{request}"
  ),
  timeouts: count(
    "db.client.connection.timeouts",
    "The number of connection timeouts that have occurred trying to obtain a connection from the pool",
    "{timeout}"
  ),
  createTime: seconds("db.client.connection.create_time", "The time it took to create a new connection"),
  waitTime: seconds("db.client.connection.wait_time", "The time it took to obtain an open connection from the pool"),
  useTime: seconds(
    "db.client.connection.use_time",
    "The time between borrowing a connection and returning it to the pool"
  ),
  pending: upDown("lifeguard.pool.connection.pending", "Connection set-ups in flight", "{connection}"),
  generation: withUnit(
    MetricKey.gauge("lifeguard.pool.generation", { description: "The pool's generation, bumped by each clear" }),
    "{generation}"
  ),
  checkouts: count("lifeguard.pool.checkouts", "Connections handed out", "{checkout}"),
  checkoutFailures: count("lifeguard.pool.checkout.failures", "Checkouts that failed, by reason", "{checkout}"),
  connectionsCreated: count("lifeguard.pool.connection.created", "Connections set up", "{connection}"),
  connectionsClosed: count("lifeguard.pool.connection.closed", "Connections closed, by reason", "{connection}"),
  setupFailures: count(
    "lifeguard.pool.connection.setup_failures",
    "Connection set-up attempts that failed, by error type",
    "{attempt}"
  )
} as const

/**
 * `db.client.connection.count`: connections by state, tagged
 * `db.client.connection.state` = `idle` / `used`. Connections being set up
 * are in neither; see {@link pending}.
 *
 * @since 0.1.0
 * @category connections
 */
export const connectionCount = Metric.fromMetricKey(keys.connectionCount)

/**
 * `db.client.connection.idle.max`: the most idle connections the pool keeps
 * (`maxSize`: lifeguard has no separate cap on idle ones).
 *
 * @since 0.1.0
 * @category limits
 */
export const connectionIdleMax = Metric.fromMetricKey(keys.connectionIdleMax)

/**
 * `db.client.connection.idle.min`: `minIdle`.
 *
 * @since 0.1.0
 * @category limits
 */
export const connectionIdleMin = Metric.fromMetricKey(keys.connectionIdleMin)

/**
 * `db.client.connection.max`: `maxSize`.
 *
 * @since 0.1.0
 * @category limits
 */
export const connectionMax = Metric.fromMetricKey(keys.connectionMax)

/**
 * `db.client.connection.pending_requests`: callers parked in the wait queue.
 *
 * @since 0.1.0
 * @category connections
 */
export const pendingRequests = Metric.fromMetricKey(keys.pendingRequests)

/**
 * `db.client.connection.timeouts`: checkouts failed by `acquireTimeout`.
 *
 * @since 0.1.0
 * @category counters
 */
export const timeouts = Metric.fromMetricKey(keys.timeouts)

/**
 * `db.client.connection.create_time`: duration of successful set-ups, in seconds.
 *
 * @since 0.1.0
 * @category histograms
 */
export const createTime = Metric.fromMetricKey(keys.createTime)

/**
 * `db.client.connection.wait_time`: from the start of a checkout to hand-out,
 * in seconds (0 for a checkout served at once).
 *
 * @since 0.1.0
 * @category histograms
 */
export const waitTime = Metric.fromMetricKey(keys.waitTime)

/**
 * `db.client.connection.use_time`: how long a borrower held a connection, in
 * seconds, recorded on return.
 *
 * @since 0.1.0
 * @category histograms
 */
export const useTime = Metric.fromMetricKey(keys.useTime)

/**
 * `lifeguard.pool.connection.pending`: connection set-ups in flight.
 *
 * @since 0.1.0
 * @category connections
 */
export const pending = Metric.fromMetricKey(keys.pending)

/**
 * `lifeguard.pool.generation`: the pool's generation.
 *
 * @since 0.1.0
 * @category connections
 */
export const generation = Metric.fromMetricKey(keys.generation)

/**
 * `lifeguard.pool.checkouts`: connections handed out.
 *
 * @since 0.1.0
 * @category counters
 */
export const checkouts = Metric.fromMetricKey(keys.checkouts)

/**
 * `lifeguard.pool.checkout.failures`: failed checkouts, tagged `lifeguard.reason`
 * (timeout, poolClosed, connectionError, waitQueueFull, interrupted).
 *
 * @since 0.1.0
 * @category counters
 */
export const checkoutFailures = Metric.fromMetricKey(keys.checkoutFailures)

/**
 * `lifeguard.pool.connection.created`: connections whose set-up succeeded.
 *
 * @since 0.1.0
 * @category counters
 */
export const connectionsCreated = Metric.fromMetricKey(keys.connectionsCreated)

/**
 * `lifeguard.pool.connection.closed`: connections closed, tagged `lifeguard.reason`
 * (stale, idle, lifetime, maxUses, error, invalidated, poolClosed).
 *
 * @since 0.1.0
 * @category counters
 */
export const connectionsClosed = Metric.fromMetricKey(keys.connectionsClosed)

/**
 * `lifeguard.pool.connection.setup_failures`: set-up attempts that failed
 * (each retry counts), tagged `error.type` with the error's `_tag`.
 *
 * @since 0.1.0
 * @category counters
 */
export const setupFailures = Metric.fromMetricKey(keys.setupFailures)
