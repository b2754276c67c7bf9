/**
 * One pool's handles on the shared `PoolMetrics`, tagged `pool=<name>` once
 * at construction, so that the hot path updates a resolved metric hook
 * instead of looking the tagged key up on every call.
 *
 * @internal
 */
import type * as Metric from "effect/Metric"
import * as MetricLabel from "effect/MetricLabel"
import * as PoolMetrics from "../PoolMetrics.js"

type Untagged<In> = Metric.Metric<any, In, any>

/** @internal */
export interface Recorder<In> {
  (value: In): void
}

const resolve = <In>(metric: Untagged<In>, tags: Record<string, string>): Recorder<In> => {
  // Effect caches a metric's hook per extra-tags array (by identity): passing
  // the same array every time keeps the registry lookup off the hot path.
  const labels = Object.entries(tags).map(([key, value]) => MetricLabel.make(key, value))
  return (value) => metric.unsafeUpdate(value, labels)
}

const byReason = <In>(metric: Untagged<In>, pool: string): (reason: string, value: In) => void => {
  const recorders = new Map<string, Recorder<In>>()
  return (reason, value) => {
    let record = recorders.get(reason)
    if (record === undefined) {
      record = resolve(metric, { pool, reason })
      recorders.set(reason, record)
    }
    record(value)
  }
}

/** @internal */
export const make = (pool: string) => ({
  idle: resolve(PoolMetrics.connections, { pool, state: "idle" }),
  inUse: resolve(PoolMetrics.connections, { pool, state: "in_use" }),
  pending: resolve(PoolMetrics.connections, { pool, state: "pending" }),
  size: resolve(PoolMetrics.size, { pool }),
  waiters: resolve(PoolMetrics.waiters, { pool }),
  checkouts: resolve(PoolMetrics.checkouts, { pool }),
  checkoutFailures: byReason(PoolMetrics.checkoutFailures, pool),
  connectionsCreated: resolve(PoolMetrics.connectionsCreated, { pool }),
  connectionsClosed: byReason(PoolMetrics.connectionsClosed, pool),
  connectFailures: resolve(PoolMetrics.connectFailures, { pool }),
  checkoutWait: resolve(PoolMetrics.checkoutWait, { pool }),
  connectionUse: resolve(PoolMetrics.connectionUse, { pool }),
  connectionSetup: resolve(PoolMetrics.connectionSetup, { pool })
})

/** @internal */
export type Metrics = ReturnType<typeof make>
