/**
 * One pool's handles on the shared `PoolMetrics`: each tagged key is looked up
 * in Effect's metric registry once, when the pool is made, so the hot path
 * updates the hook directly.
 *
 * @internal
 */
import * as Metric from "effect/Metric"
import * as MetricKey from "effect/MetricKey"
import type * as MetricKeyType from "effect/MetricKeyType"
import * as MetricLabel from "effect/MetricLabel"
import { keys } from "../PoolMetrics.js"

/** @internal */
export interface Recorder<In> {
  (value: In): void
}

const resolve = <Type extends MetricKeyType.MetricKeyType<any, any>>(
  key: MetricKey.MetricKey<Type>,
  tags: Record<string, string>
): Recorder<MetricKeyType.MetricKeyType.InType<Type>> => {
  const labels = Object.entries(tags).map(([name, value]) => MetricLabel.make(name, value))
  const hook = Metric.globalMetricRegistry.get(MetricKey.taggedWithLabels(key, labels))
  return (value) => hook.update(value)
}

const byReason = <Type extends MetricKeyType.MetricKeyType<any, any>>(
  key: MetricKey.MetricKey<Type>,
  pool: string
): (reason: string, value: MetricKeyType.MetricKeyType.InType<Type>) => void => {
  const recorders = new Map<string, Recorder<MetricKeyType.MetricKeyType.InType<Type>>>()
  return (reason, value) => {
    let record = recorders.get(reason)
    if (record === undefined) {
      record = resolve(key, { pool, reason })
      recorders.set(reason, record)
    }
    record(value)
  }
}

/** @internal */
export const make = (pool: string) => ({
  idle: resolve(keys.connections, { pool, state: "idle" }),
  inUse: resolve(keys.connections, { pool, state: "in_use" }),
  pending: resolve(keys.connections, { pool, state: "pending" }),
  size: resolve(keys.size, { pool }),
  waiters: resolve(keys.waiters, { pool }),
  checkouts: resolve(keys.checkouts, { pool }),
  checkoutFailures: byReason(keys.checkoutFailures, pool),
  connectionsCreated: resolve(keys.connectionsCreated, { pool }),
  connectionsClosed: byReason(keys.connectionsClosed, pool),
  connectFailures: resolve(keys.connectFailures, { pool }),
  checkoutWait: resolve(keys.checkoutWait, { pool }),
  connectionUse: resolve(keys.connectionUse, { pool }),
  connectionSetup: resolve(keys.connectionSetup, { pool })
})

/** @internal */
export type Metrics = ReturnType<typeof make>
