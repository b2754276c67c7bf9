/**
 * One pool's handles on the shared `PoolMetrics`: each tagged key is looked up
 * in Effect's metric registry once, when the pool is made, so the hot path
 * updates the hook directly. The pool passes milliseconds and absolute
 * levels; the conversion to seconds and to up-down deltas happens here.
 *
 * @internal
 */
import * as Metric from "effect/Metric"
import * as MetricKey from "effect/MetricKey"
import type * as MetricKeyType from "effect/MetricKeyType"
import * as MetricLabel from "effect/MetricLabel"
import type { ResolvedOptions } from "../PoolConfig.js"
import { errorType, keys, poolName, reason as reasonTag, state } from "../PoolMetrics.js"

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

/**
 * An up-down counter fed absolute levels: it adds the change since the last
 * level, so pools that share a name add up instead of overwriting each other.
 */
const level = (key: MetricKey.MetricKey.Counter<number>, tags: Record<string, string>): Recorder<number> => {
  const add = resolve(key, tags)
  let last = 0
  return (value) => {
    if (value !== last) {
      add(value - last)
      last = value
    }
  }
}

/** A histogram in seconds fed milliseconds. */
const seconds = (key: MetricKey.MetricKey.Histogram, tags: Record<string, string>): Recorder<number> => {
  const record = resolve(key, tags)
  return (millis) => record(millis / 1000)
}

const byTag = <Type extends MetricKeyType.MetricKeyType<any, any>>(
  key: MetricKey.MetricKey<Type>,
  pool: string,
  tag: string
): (value: string, input: MetricKeyType.MetricKeyType.InType<Type>) => void => {
  const recorders = new Map<string, Recorder<MetricKeyType.MetricKeyType.InType<Type>>>()
  return (value, input) => {
    let record = recorders.get(value)
    if (record === undefined) {
      record = resolve(key, { [poolName]: pool, [tag]: value })
      recorders.set(value, record)
    }
    record(input)
  }
}

/** What `error.type` says about a failed set-up: the tag of a tagged error, else its class. */
const typeOf = (error: unknown): string => {
  if (typeof error === "object" && error !== null) {
    if ("_tag" in error && typeof error._tag === "string") return error._tag
    if (error instanceof Error) return error.name
  }
  return "unknown"
}

/** @internal */
export const make = (options: ResolvedOptions) => {
  const pool = options.name
  const tags = { [poolName]: pool }
  const limits = [
    [resolve(keys.connectionMax, tags), options.maxSize],
    [resolve(keys.connectionIdleMax, tags), options.maxSize],
    [resolve(keys.connectionIdleMin, tags), options.minIdle]
  ] as const
  for (const [add, limit] of limits) add(limit)
  const timeouts = resolve(keys.timeouts, tags)
  const checkoutFailures = byTag(keys.checkoutFailures, pool, reasonTag)
  const setupFailures = byTag(keys.setupFailures, pool, errorType)
  return {
    idle: level(keys.connectionCount, { ...tags, [state]: "idle" }),
    inUse: level(keys.connectionCount, { ...tags, [state]: "used" }),
    pending: level(keys.pending, tags),
    waiters: level(keys.pendingRequests, tags),
    generation: resolve(keys.generation, tags),
    checkouts: resolve(keys.checkouts, tags),
    checkoutFailures: (reason: string, n: number) => {
      checkoutFailures(reason, n)
      if (reason === "timeout") timeouts(n)
    },
    connectionsCreated: resolve(keys.connectionsCreated, tags),
    connectionsClosed: byTag(keys.connectionsClosed, pool, reasonTag),
    connectFailures: (error: unknown) => setupFailures(typeOf(error), 1),
    checkoutWait: seconds(keys.waitTime, tags),
    connectionUse: seconds(keys.useTime, tags),
    connectionSetup: seconds(keys.createTime, tags),
    /** The pool is gone: its limits no longer add to the totals. */
    close: () => {
      for (const [add, limit] of limits) add(-limit)
    }
  }
}

/** @internal */
export type Metrics = ReturnType<typeof make>
