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

const timeBoundaries = MetricBoundaries.exponential({ start: 0.05, factor: 2, count: 20 })

/**
 * Connections by state, tagged `state=idle|in_use|pending`.
 *
 * @since 0.1.0
 * @category gauges
 */
export const connections = Metric.gauge("lifeguard_pool_connections", {
  description: "Connections by state (idle, in_use, pending)"
})

/**
 * All connections, counting those in set-up.
 *
 * @since 0.1.0
 * @category gauges
 */
export const size = Metric.gauge("lifeguard_pool_size", {
  description: "Connections open or in set-up"
})

/**
 * Callers parked in the wait queue.
 *
 * @since 0.1.0
 * @category gauges
 */
export const waiters = Metric.gauge("lifeguard_pool_waiters", {
  description: "Callers waiting for a connection"
})

/**
 * Successful checkouts.
 *
 * @since 0.1.0
 * @category counters
 */
export const checkouts = Metric.counter("lifeguard_pool_checkouts_total", {
  description: "Connections handed out",
  incremental: true
})

/**
 * Failed checkouts, tagged `reason` (timeout, poolClosed, connectionError, waitQueueFull, interrupted).
 *
 * @since 0.1.0
 * @category counters
 */
export const checkoutFailures = Metric.counter("lifeguard_pool_checkout_failures_total", {
  description: "Checkouts that failed, by reason",
  incremental: true
})

/**
 * Connections whose set-up succeeded.
 *
 * @since 0.1.0
 * @category counters
 */
export const connectionsCreated = Metric.counter("lifeguard_pool_connections_created_total", {
  description: "Connections set up",
  incremental: true
})

/**
 * Connections closed, tagged `reason` (stale, idle, lifetime, maxUses, error, invalidated, poolClosed).
 *
 * @since 0.1.0
 * @category counters
 */
export const connectionsClosed = Metric.counter("lifeguard_pool_connections_closed_total", {
  description: "Connections closed, by reason",
  incremental: true
})

/**
 * Set-up attempts that failed (each retry counts).
 *
 * @since 0.1.0
 * @category counters
 */
export const connectFailures = Metric.counter("lifeguard_pool_connect_failures_total", {
  description: "Connection set-up attempts that failed",
  incremental: true
})

/**
 * Time from the start of a checkout to hand-out.
 *
 * @since 0.1.0
 * @category histograms
 */
export const checkoutWait = Metric.histogram(
  "lifeguard_pool_checkout_wait_ms",
  timeBoundaries,
  "Checkout wait in milliseconds"
)

/**
 * Time a connection was held by its borrower.
 *
 * @since 0.1.0
 * @category histograms
 */
export const connectionUse = Metric.histogram(
  "lifeguard_pool_connection_use_ms",
  timeBoundaries,
  "Time a connection was checked out, in milliseconds"
)

/**
 * Time a successful connection set-up took.
 *
 * @since 0.1.0
 * @category histograms
 */
export const connectionSetup = Metric.histogram(
  "lifeguard_pool_connection_setup_ms",
  timeBoundaries,
  "Connection set-up time in milliseconds"
)
