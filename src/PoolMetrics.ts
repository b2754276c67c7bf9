/**
 * The `Metric`s every pool keeps, each tagged `pool=<name>`. Read one for a
 * given pool with `Metric.value(PoolMetrics.checkouts.pipe(Metric.tagged("pool", "db")))`,
 * or export them all with any Effect metrics exporter.
 *
 * Times are milliseconds.
 *
 * @since 0.1.0
 */
import * as Metric from "effect/Metric"
import * as MetricBoundaries from "effect/MetricBoundaries"
import * as MetricKey from "effect/MetricKey"

const timeBoundaries = MetricBoundaries.exponential({ start: 0.05, factor: 2, count: 20 })

/**
 * The metrics' keys, from which both the public metrics below and each
 * pool's own handles (resolved once, off the hot path) are made.
 *
 * @internal
 */
export const keys = {
  connections: MetricKey.gauge("lifeguard_pool_connections", {
    description: "Connections by state (idle, in_use, pending)"
  }),
  size: MetricKey.gauge("lifeguard_pool_size", { description: "Connections open or in set-up" }),
  waiters: MetricKey.gauge("lifeguard_pool_waiters", { description: "Callers waiting for a connection" }),
  checkouts: MetricKey.counter("lifeguard_pool_checkouts_total", {
    description: "Connections handed out",
    incremental: true
  }),
  checkoutFailures: MetricKey.counter("lifeguard_pool_checkout_failures_total", {
    description: "Checkouts that failed, by reason",
    incremental: true
  }),
  connectionsCreated: MetricKey.counter("lifeguard_pool_connections_created_total", {
    description: "Connections set up",
    incremental: true
  }),
  connectionsClosed: MetricKey.counter("lifeguard_pool_connections_closed_total", {
    description: "Connections closed, by reason",
    incremental: true
  }),
  connectFailures: MetricKey.counter("lifeguard_pool_connect_failures_total", {
    description: "Connection set-up attempts that failed",
    incremental: true
  }),
  checkoutWait: MetricKey.histogram("lifeguard_pool_checkout_wait_ms", timeBoundaries, "Checkout wait in milliseconds"),
  connectionUse: MetricKey.histogram(
    "lifeguard_pool_connection_use_ms",
    timeBoundaries,
    "Time a connection was checked out, in milliseconds"
  ),
  connectionSetup: MetricKey.histogram(
    "lifeguard_pool_connection_setup_ms",
    timeBoundaries,
    "Connection set-up time in milliseconds"
  )
} as const

/**
 * Connections by state, tagged `state=idle|in_use|pending`.
 *
 * @since 0.1.0
 * @category gauges
 */
export const connections = Metric.fromMetricKey(keys.connections)

/**
 * All connections, counting those in set-up.
 *
 * @since 0.1.0
 * @category gauges
 */
export const size = Metric.fromMetricKey(keys.size)

/**
 * Callers parked in the wait queue.
 *
 * @since 0.1.0
 * @category gauges
 */
export const waiters = Metric.fromMetricKey(keys.waiters)

/**
 * Successful checkouts.
 *
 * @since 0.1.0
 * @category counters
 */
export const checkouts = Metric.fromMetricKey(keys.checkouts)

/**
 * Failed checkouts, tagged `reason` (timeout, poolClosed, connectionError, waitQueueFull, interrupted).
 *
 * @since 0.1.0
 * @category counters
 */
export const checkoutFailures = Metric.fromMetricKey(keys.checkoutFailures)

/**
 * Connections whose set-up succeeded.
 *
 * @since 0.1.0
 * @category counters
 */
export const connectionsCreated = Metric.fromMetricKey(keys.connectionsCreated)

/**
 * Connections closed, tagged `reason` (stale, idle, lifetime, maxUses, error, invalidated, poolClosed).
 *
 * @since 0.1.0
 * @category counters
 */
export const connectionsClosed = Metric.fromMetricKey(keys.connectionsClosed)

/**
 * Set-up attempts that failed (each retry counts).
 *
 * @since 0.1.0
 * @category counters
 */
export const connectFailures = Metric.fromMetricKey(keys.connectFailures)

/**
 * Time from the start of a checkout to hand-out.
 *
 * @since 0.1.0
 * @category histograms
 */
export const checkoutWait = Metric.fromMetricKey(keys.checkoutWait)

/**
 * Time a connection was held by its borrower.
 *
 * @since 0.1.0
 * @category histograms
 */
export const connectionUse = Metric.fromMetricKey(keys.connectionUse)

/**
 * Time a successful connection set-up took.
 *
 * @since 0.1.0
 * @category histograms
 */
export const connectionSetup = Metric.fromMetricKey(keys.connectionSetup)
