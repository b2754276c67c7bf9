/**
 * The bridge from the driver's monitoring events to lifeguard's: the driver's
 * CMAP events become lifeguard pool events of the same names (with the
 * server's `address`) and update the same metrics (tagged `address`); its
 * SDAM events say whether any server is reachable, what the last error
 * was and how long each server's check has run; its command events become
 * spans. Everything the driver reports goes through this file.
 *
 * @internal
 */
import type * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Exit from "effect/Exit"
import * as Metric from "effect/Metric"
import * as MetricKey from "effect/MetricKey"
import type * as MetricKeyType from "effect/MetricKeyType"
import * as MetricLabel from "effect/MetricLabel"
import * as Option from "effect/Option"
import type * as Tracer from "effect/Tracer"
import type { MongoClient } from "mongodb"
import type { ResolvedOptions } from "../../PoolConfig.js"
import type { CheckOutFailedReason, CloseReason, PoolEvent } from "../../PoolEvent.js"
import { keys, poolName, reason as reasonTag, state } from "../../PoolMetrics.js"
import type { DriverEvent } from "../MongoPool.js"

/** Where bridged events go. */
export interface Sink {
  /** False when nobody listens: events are then not even built. */
  readonly listened: () => boolean
  readonly emit: (event: DriverEvent) => void
}

type Fields<T extends PoolEvent["_tag"]> = Omit<Extract<PoolEvent, { readonly _tag: T }>, "_tag" | "pool" | "time" | "address">

/** The one place a bridged event is shaped: the core's event with the server's address. */
const driverEvent = <T extends PoolEvent["_tag"]>(
  _tag: T,
  pool: string,
  time: number,
  address: string,
  fields: Fields<T>
): DriverEvent => ({ _tag, pool, time, address, ...fields }) as unknown as DriverEvent

type Recorder = (value: number) => void

const recorder = (key: MetricKey.MetricKey<MetricKeyType.MetricKeyType<number, any>>, tags: Record<string, string>): Recorder => {
  const labels = Object.entries(tags).map(([name, value]) => MetricLabel.make(name, value))
  const hook = Metric.globalMetricRegistry.get(MetricKey.taggedWithLabels(key, labels))
  return (value) => hook.update(value)
}

/** An up-down counter fed absolute levels, as the core's: it adds the change since the last level. */
const level = (key: MetricKey.MetricKey.Counter<number>, tags: Record<string, string>): Recorder => {
  const add = recorder(key, tags)
  let last = 0
  return (value) => {
    if (value !== last) {
      add(value - last)
      last = value
    }
  }
}

/** A histogram in seconds fed milliseconds, as the core's. */
const seconds = (key: MetricKey.MetricKey.Histogram, tags: Record<string, string>): Recorder => {
  const record = recorder(key, tags)
  return (millis) => record(millis / 1000)
}

type SocketState = "pending" | "idle" | "inUse"

/** The OpenTelemetry attributes of one server: `server.address` and `server.port`. */
const serverTags = (pool: string, address: string): Record<string, string> => {
  const colon = address.lastIndexOf(":")
  return colon < 0
    ? { [poolName]: pool, "server.address": address }
    : { [poolName]: pool, "server.address": address.slice(0, colon), "server.port": address.slice(colon + 1) }
}

/** One server's driver pool as lifeguard counts it, with its metric handles resolved once. */
class Server {
  readonly sockets = new Map<number, { state: SocketState; since: number }>()
  pending = 0
  idle = 0
  inUse = 0
  clears = 0
  private readonly tags: Record<string, string>
  private readonly byReason = new Map<string, Recorder>()
  readonly metrics: {
    readonly idle: Recorder
    readonly inUse: Recorder
    readonly pending: Recorder
    readonly checkouts: Recorder
    readonly timeouts: Recorder
    readonly connectionsCreated: Recorder
    readonly checkoutWait: Recorder
    readonly connectionUse: Recorder
    readonly connectionSetup: Recorder
  }

  constructor(readonly pool: string, readonly address: string) {
    const tags = serverTags(pool, address)
    this.tags = tags
    this.metrics = {
      idle: level(keys.connectionCount, { ...tags, [state]: "idle" }),
      inUse: level(keys.connectionCount, { ...tags, [state]: "used" }),
      pending: level(keys.pending, tags),
      checkouts: recorder(keys.checkouts, tags),
      timeouts: recorder(keys.timeouts, tags),
      connectionsCreated: recorder(keys.connectionsCreated, tags),
      checkoutWait: seconds(keys.waitTime, tags),
      connectionUse: seconds(keys.useTime, tags),
      connectionSetup: seconds(keys.createTime, tags)
    }
  }

  count(which: "failure" | "closed", why: string): void {
    const id = `${which}:${why}`
    let record = this.byReason.get(id)
    if (record === undefined) {
      record = recorder(which === "failure" ? keys.checkoutFailures : keys.connectionsClosed, {
        ...this.tags,
        [reasonTag]: why
      })
      this.byReason.set(id, record)
    }
    record(1)
    if (which === "failure" && why === "timeout") this.metrics.timeouts(1)
  }

  move(id: number, to: SocketState | undefined, now: number): number {
    const socket = this.sockets.get(id)
    const since = socket?.since ?? now
    const from = socket?.state
    if (from !== undefined) this[from]--
    if (to === undefined) this.sockets.delete(id)
    else if (socket === undefined) this.sockets.set(id, { state: to, since: now })
    else {
      socket.state = to
      socket.since = now
    }
    if (to !== undefined) this[to]++
    // The levels add only their change, so touching an unchanged one costs a comparison.
    this.metrics.idle(this.idle)
    this.metrics.inUse(this.inUse)
    this.metrics.pending(this.pending)
    return now - since
  }
}

const closeReasons = new Set<string>(["stale", "idle", "error", "poolClosed"])
const failureReasons = new Set<string>(["poolClosed", "timeout", "connectionError"])

/** What the monitor tells the adapter. */
export interface Owner {
  readonly name: string
  readonly options: ResolvedOptions
  readonly clock: Clock.Clock
  readonly sink: Sink
  /** The driver cleared its pool for a server: lifeguard bumps its generation. */
  readonly onCleared: (address: string, reason: unknown) => void
  /** The tracer command spans go to; undefined turns them off. */
  readonly tracer: Tracer.Tracer | undefined
  /** The span an operation on this logical session runs under (see `lease.ts`). */
  readonly parentOf: (lsid: unknown) => Tracer.AnySpan | undefined
}

/** @internal */
export class DriverMonitor {
  /** True while at least one data-bearing server is known. */
  available = true
  /** The driver's last heartbeat or network error, cleared by a successful heartbeat. */
  lastError: unknown = undefined
  private readonly servers = new Map<string, Server>()
  private readonly spans = new Map<number, Tracer.Span>()
  /** When each server's check in progress started, by address. */
  private readonly checks = new Map<string, number>()

  constructor(private readonly client: MongoClient, private readonly owner: Owner) {
    const { name, sink } = owner
    const now = () => owner.clock.unsafeCurrentTimeMillis()
    const on = client.on.bind(client) as (event: string, listener: (event: any) => void) => void

    on("connectionPoolCreated", (e) => {
      this.server(e.address)
      if (sink.listened()) sink.emit(driverEvent("ConnectionPoolCreated", name, now(), e.address, { options: owner.options }))
    })
    on("connectionPoolReady", (e) => {
      if (sink.listened()) sink.emit(driverEvent("ConnectionPoolReady", name, now(), e.address, {}))
    })
    on("connectionPoolCleared", (e) => {
      const server = this.server(e.address)
      server.clears++
      const interrupt = e.interruptInUseConnections === true
      if (sink.listened()) {
        sink.emit(driverEvent("ConnectionPoolCleared", name, now(), e.address, {
          generation: server.clears,
          interruptInUseConnections: interrupt
        }))
      }
      // The driver marks the server unknown (with the error) right after it clears the pool.
      queueMicrotask(() => owner.onCleared(e.address, this.lastError))
    })
    on("connectionPoolClosed", (e) => {
      if (sink.listened()) sink.emit(driverEvent("ConnectionPoolClosed", name, now(), e.address, {}))
    })
    on("connectionCreated", (e) => {
      if (typeof e.connectionId !== "number") return
      this.server(e.address).move(e.connectionId, "pending", now())
      if (sink.listened()) sink.emit(driverEvent("ConnectionCreated", name, now(), e.address, { connectionId: e.connectionId }))
    })
    on("connectionReady", (e) => {
      if (typeof e.connectionId !== "number") return
      const server = this.server(e.address)
      server.move(e.connectionId, "idle", now())
      server.metrics.connectionsCreated(1)
      server.metrics.connectionSetup(e.durationMS)
      if (sink.listened()) {
        sink.emit(driverEvent("ConnectionReady", name, now(), e.address, { connectionId: e.connectionId, duration: e.durationMS }))
      }
    })
    on("connectionClosed", (e) => {
      if (typeof e.connectionId !== "number") return
      const server = this.server(e.address)
      const reason: CloseReason = closeReasons.has(e.reason) ? e.reason : "error"
      server.move(e.connectionId, undefined, now())
      server.count("closed", reason)
      if (sink.listened()) {
        sink.emit(driverEvent("ConnectionClosed", name, now(), e.address, {
          connectionId: e.connectionId,
          reason,
          ...(e.error === undefined ? {} : { error: e.error })
        }))
      }
    })
    on("connectionCheckOutStarted", (e) => {
      if (sink.listened()) sink.emit(driverEvent("ConnectionCheckOutStarted", name, now(), e.address, {}))
    })
    on("connectionCheckOutFailed", (e) => {
      const reason: CheckOutFailedReason = failureReasons.has(e.reason) ? e.reason : "connectionError"
      this.server(e.address).count("failure", reason)
      if (sink.listened()) {
        sink.emit(driverEvent("ConnectionCheckOutFailed", name, now(), e.address, {
          reason,
          duration: e.durationMS,
          ...(e.error === undefined ? {} : { error: e.error })
        }))
      }
    })
    on("connectionCheckedOut", (e) => {
      if (typeof e.connectionId !== "number") return
      const server = this.server(e.address)
      server.move(e.connectionId, "inUse", now())
      server.metrics.checkouts(1)
      server.metrics.checkoutWait(e.durationMS)
      if (sink.listened()) {
        sink.emit(driverEvent("ConnectionCheckedOut", name, now(), e.address, { connectionId: e.connectionId, duration: e.durationMS }))
      }
    })
    on("connectionCheckedIn", (e) => {
      if (typeof e.connectionId !== "number") return
      const server = this.server(e.address)
      const held = server.move(e.connectionId, "idle", now())
      server.metrics.connectionUse(held)
      if (sink.listened()) {
        sink.emit(driverEvent("ConnectionCheckedIn", name, now(), e.address, { connectionId: e.connectionId, duration: held }))
      }
    })

    // A heartbeat is a check in progress from its start to its outcome (an awaited one starts again at once).
    on("serverHeartbeatStarted", (e) => {
      this.checks.set(e.connectionId, now())
    })
    on("serverHeartbeatSucceeded", (e) => {
      this.checks.delete(e.connectionId)
    })
    // A server dropped from the topology (or the whole topology closed) stops its monitor without an outcome.
    on("serverClosed", (e) => {
      this.checks.delete(e.address)
    })
    on("topologyClosed", () => {
      this.checks.clear()
    })
    on("serverHeartbeatFailed", (e) => {
      this.checks.delete(e.connectionId)
      this.lastError = e.failure
    })
    on("serverDescriptionChanged", (e) => {
      if (e.newDescription.error != null) this.lastError = e.newDescription.error
    })
    on("topologyDescriptionChanged", (e) => {
      this.available = e.newDescription.hasDataBearingServers
      if (this.available) this.lastError = undefined
    })

    if (owner.tracer !== undefined) this.traceCommands(owner.tracer)
  }

  private server(address: string): Server {
    let server = this.servers.get(address)
    if (server === undefined) {
      server = new Server(this.owner.name, address)
      this.servers.set(address, server)
    }
    return server
  }

  /** The longest-running check, if it has run for at least `bound` ms. */
  stalledCheck(bound: number): { readonly address: string; readonly runningMs: number } | undefined {
    const now = this.owner.clock.unsafeCurrentTimeMillis()
    let stalled: { address: string; runningMs: number } | undefined
    for (const [address, since] of this.checks) {
      const runningMs = now - since
      if (runningMs >= bound && (stalled === undefined || runningMs > stalled.runningMs)) stalled = { address, runningMs }
    }
    return stalled
  }

  /** The client was closed: its checks ended without an outcome, and no server is known until it reconnects. */
  restarted(): void {
    this.checks.clear()
    this.available = false
  }

  /** Connections the driver holds to each server now, by state. */
  connections(): ReadonlyArray<{ readonly address: string; readonly idle: number; readonly inUse: number; readonly pending: number }> {
    return [...this.servers.values()].map(({ address, idle, inUse, pending }) => ({ address, idle, inUse, pending }))
  }

  private traceCommands(tracer: Tracer.Tracer): void {
    const { clock } = this.owner
    const on = this.client.on.bind(this.client) as (event: string, listener: (event: any) => void) => void
    on("commandStarted", (e) => {
      const target = e.command?.[e.commandName]
      const collection = typeof target === "string" ? target : undefined
      const span = tracer.span(
        collection === undefined ? e.commandName : `${e.commandName} ${collection}`,
        Option.fromNullable(this.owner.parentOf(e.command?.lsid)),
        Context.empty(),
        [],
        clock.unsafeCurrentTimeNanos(),
        "client"
      )
      span.attribute("db.system", "mongodb")
      span.attribute("db.operation.name", e.commandName)
      span.attribute("db.namespace", e.databaseName)
      if (collection !== undefined) span.attribute("db.collection.name", collection)
      span.attribute("server.address", e.address)
      span.attribute("lifeguard.pool", this.owner.name)
      this.spans.set(e.requestId, span)
    })
    const end = (e: { readonly requestId: number; readonly failure?: unknown }) => {
      const span = this.spans.get(e.requestId)
      if (span === undefined) return
      this.spans.delete(e.requestId)
      if (e.failure !== undefined) span.attribute("error.type", String((e.failure as Error).name ?? "Error"))
      span.end(clock.unsafeCurrentTimeNanos(), e.failure === undefined ? exitVoid : exitFailed(e.failure))
    }
    on("commandSucceeded", end)
    on("commandFailed", end)
  }
}

const exitVoid = Exit.void
const exitFailed = (failure: unknown) => Exit.fail(failure)
