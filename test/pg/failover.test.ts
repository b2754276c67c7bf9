import * as Reactivity from "@effect/experimental/Reactivity"
import { SqlClient, type SqlError } from "@effect/sql"
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { SqlError as SqlErrorClass } from "@effect/sql/SqlError"
import { Clock, Deferred, Duration, Effect, Exit, Fiber, Layer, Option, Random, Ref, Schedule, Stream, TestClock } from "effect"
import { randomUUID } from "node:crypto"
import * as Net from "node:net"
import pg from "pg"
import { PgPool } from "../../src/pg/index.js"
import type { PoolConfigError } from "../../src/PoolError.js"
import { type HostList, NoSuitableHostError, resolveHosts, type Role, type Target, walk } from "../../src/pg/internal/hosts.js"
import { adminQuery, freePort } from "../utils/postgres.js"
import { type ReplicaSet, replicaSetScoped, startReplicaSet } from "../utils/replication.js"

// A primary and a synchronous standby of our own; each failover test makes its own pair.
let cluster: ReplicaSet
beforeAll(async () => {
  cluster = await startReplicaSet({ synchronous: true })
  await adminQuery(cluster.primary.url, "CREATE TABLE writes (id text NOT NULL, worker int NOT NULL)")
}, 60_000)
afterAll(() => cluster?.stop())

const hostsOf = (...ports: ReadonlyArray<number>) => ports.map((port) => `127.0.0.1:${port}`).join(",")
const urlOf = (ports: ReadonlyArray<number>, attrs?: string) =>
  `postgres://postgres@${hostsOf(...ports)}/postgres${attrs === undefined ? "" : `?target_session_attrs=${attrs}`}`

/** Which server a statement ran on, and its role. */
const whereAmI = Effect.flatMap(SqlClient.SqlClient, (sql) =>
  sql<{ port: number; standby: boolean }>`SELECT inet_server_port() AS port, pg_is_in_recovery() AS standby`).pipe(
    Effect.map(([row]) => row!)
  )

/** A TCP server that accepts and never answers: a host that is there but hangs. */
const blackhole = Effect.acquireRelease(
  Effect.async<{ readonly server: Net.Server; readonly port: number }>((resume) => {
    const sockets = new Set<Net.Socket>()
    const server = Net.createServer((socket) => {
      sockets.add(socket)
      socket.on("close", () => sockets.delete(socket))
    })
    server.listen(0, "127.0.0.1", () => resume(Effect.succeed({ server, port: (server.address() as Net.AddressInfo).port })))
    server.on("close", () => sockets.forEach((socket) => socket.destroy()))
  }),
  ({ server }) => Effect.async<void>((resume) => {
    server.close(() => resume(Effect.void))
    server.emit("close")
  })
)

const failureOf = <A, E>(exit: Exit.Exit<A, E>): E => {
  if (Exit.isSuccess(exit)) throw new Error("expected a failure")
  return Option.getOrThrow(Exit.causeOption(exit).pipe(
    Option.flatMap((cause) => cause._tag === "Fail" ? Option.some(cause.error) : Option.none())
  ))
}

describe("host lists as libpq reads them", () => {
  it("a url's host list and parameters; the hosts option; ports default to port", () => {
    const fromUrl = resolveHosts({
      url: "postgres://u:p%40ss@h1:5432,h2:5433,[::1]/db?target_session_attrs=read-write&load_balance_hosts=random&application_name=x"
    })
    expect(fromUrl.problems).toStrictEqual([])
    expect(fromUrl.targets.map((t) => [t.host, t.port])).toStrictEqual([["h1", 5432], ["h2", 5433], ["::1", 5432]])
    expect(fromUrl.targets[1]!.url).toBe("postgres://u:p%40ss@h2:5433/db?application_name=x")
    expect(fromUrl.options.url).toBe("postgres://u:p%40ss@h1:5432/db?application_name=x")
    expect(fromUrl).toMatchObject({ targetSessionAttrs: "read-write", loadBalance: true })

    const fromOption = resolveHosts({ hosts: ["a:1", { host: "b" }], port: 6000, targetSessionAttrs: "standby" })
    expect(fromOption.targets.map((t) => [t.host, t.port, t.url])).toStrictEqual([["a", 1, undefined], ["b", 6000, undefined]])
    expect(fromOption).toMatchObject({ targetSessionAttrs: "standby", loadBalance: false })
    expect(resolveHosts({ host: "x,y:7" }).targets.map((t) => [t.host, t.port])).toStrictEqual([["x", 5432], ["y", 7]])
  })

  it("an entry whose port was left off (\"db1:\") is a problem, not the default port", () => {
    const list = resolveHosts({ hosts: ["127.0.0.1:", "127.0.0.1:5433"] })
    expect(list.problems).toStrictEqual([
      `hosts: "127.0.0.1:" is not host or host:port (a port is a whole number from 1 to 65535)`
    ])
  })

  it.effect("wrong values are a PoolConfigError that lists each problem", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(PgPool.make({
        url: "postgres://h1:99999,h2/db?target_session_attrs=master",
        loadBalanceHosts: "sometimes" as "random"
      }))
      expect(error._tag).toBe("PoolConfigError")
      expect((error as PoolConfigError).problems).toHaveLength(3)
      expect(error.message).toContain(`"h1:99999" is not host or host:port`)
      expect(error.message).toContain(`target_session_attrs) must be one of any, read-write, read-only, primary, standby, prefer-standby (got "master")`)
      const balance = yield* Effect.flip(PgPool.make({ url: "postgres://h1/db", loadBalanceHosts: "sometimes" as "random" }))
      expect(balance.message).toContain(`loadBalanceHosts (load_balance_hosts) must be "disable" or "random"`)
    }).pipe(Effect.scoped, Effect.provide(Reactivity.layer)))
})

/** Hosts for the walk under TestClock: how each one answers a connect, and its role. */
type FakeHost = { readonly connect: "refuse" | "hang" | number; readonly role?: Role }
const primaryRole: Role = { standby: false, readOnly: false }
const standbyRole: Role = { standby: true, readOnly: true }

const fakeWalk = (hosts: ReadonlyArray<FakeHost>, attrs: HostList["targetSessionAttrs"], loadBalance = false) => {
  const open = new Set<number>()
  const list: HostList = {
    options: {},
    targets: hosts.map((_, i) => ({ host: "h", port: i + 1, url: undefined })),
    targetSessionAttrs: attrs,
    loadBalance,
    problems: []
  }
  const connect = (target: Target) =>
    Effect.gen(function*() {
      const host = hosts[target.port - 1]!
      yield* Effect.acquireRelease(
        Effect.sync(() => open.add(target.port)),
        () => Effect.sync(() => open.delete(target.port))
      )
      if (host.connect === "refuse") return yield* new SqlErrorClass({ message: "connect ECONNREFUSED" })
      if (host.connect === "hang") return yield* Effect.never
      yield* Effect.sleep(Duration.millis(host.connect))
      return target.port
    })
  const checkRole = (port: number) => Effect.succeed(hosts[port - 1]!.role ?? primaryRole)
  return { open, run: walk("fake", list, 500, connect, checkRole, () => true) }
}

describe("the host walk, under TestClock", () => {
  it.scoped("each host gets createTimeout; rejected hosts are closed before the next is tried; the kept one stays open", () =>
    Effect.gen(function*() {
      const { open, run } = fakeWalk(
        [{ connect: "refuse" }, { connect: "hang" }, { connect: 10, role: standbyRole }, { connect: 10 }],
        "read-write"
      )
      const fiber = yield* Effect.fork(run)
      yield* TestClock.adjust("499 millis")
      expect(fiber.unsafePoll()).toBeNull()
      expect([...open]).toStrictEqual([2])
      yield* TestClock.adjust("1 millis")
      yield* TestClock.adjust("10 millis")
      yield* TestClock.adjust("10 millis")
      expect(yield* Fiber.join(fiber)).toBe(4)
      expect([...open]).toStrictEqual([4])
    }))

  it.scoped("prefer-standby keeps the first primary open as the fallback, and drops it when a standby answers", () =>
    Effect.gen(function*() {
      const withStandby = fakeWalk([{ connect: 0 }, { connect: "refuse" }, { connect: 0, role: standbyRole }], "prefer-standby")
      expect(yield* withStandby.run).toBe(3)
      expect([...withStandby.open]).toStrictEqual([3])
      const without = fakeWalk([{ connect: 0 }, { connect: 0 }], "prefer-standby")
      expect(yield* without.run).toBe(1)
      expect([...without.open]).toStrictEqual([1])
    }))

  it.scoped("no host fits: a NoSuitableHostError with each host and its reason, nothing left open", () =>
    Effect.gen(function*() {
      const { open, run } = fakeWalk([{ connect: 0 }, { connect: "hang" }, { connect: "refuse" }], "standby")
      const fiber = yield* Effect.fork(Effect.flip(run))
      yield* TestClock.adjust("500 millis")
      const error = yield* Fiber.join(fiber)
      expect(error.cause).toBeInstanceOf(NoSuitableHostError)
      expect((error.cause as NoSuitableHostError).rejected.map((r) => r.reason)).toStrictEqual([
        "a primary (pg_is_in_recovery() = false)",
        "no answer within createTimeout (500ms)",
        "connect ECONNREFUSED"
      ])
      expect(open.size).toBe(0)
    }))

  it.scoped("load_balance_hosts=random: the first host tried varies with Effect's Random", () =>
    Effect.gen(function*() {
      const firsts = new Set<number>()
      for (let seed = 0; seed < 20; seed++) {
        const { run } = fakeWalk([{ connect: 0 }, { connect: 0 }, { connect: 0 }], "any", true)
        firsts.add(yield* Effect.scoped(run).pipe(Effect.withRandom(Random.make(seed))))
      }
      expect([...firsts].sort()).toStrictEqual([1, 2, 3])
      // Without it, always the first.
      const { run } = fakeWalk([{ connect: 0 }, { connect: 0 }], "any")
      expect(yield* Effect.scoped(run)).toBe(1)
    }))
})

describe("a primary and a standby", () => {
  it.live("target_session_attrs picks the server by role, whatever the order of the hosts", () =>
    Effect.gen(function*() {
      const { primary, standby } = cluster
      const on = (ports: ReadonlyArray<number>, attrs: string) =>
        whereAmI.pipe(Effect.provide(PgPool.layer({ url: urlOf(ports, attrs), maxSize: 1, createTimeout: "2 seconds" })))
      expect(yield* on([standby.port, primary.port], "read-write")).toStrictEqual({ port: primary.port, standby: false })
      expect(yield* on([standby.port, primary.port], "primary")).toStrictEqual({ port: primary.port, standby: false })
      expect(yield* on([primary.port, standby.port], "read-only")).toStrictEqual({ port: standby.port, standby: true })
      expect(yield* on([primary.port, standby.port], "standby")).toStrictEqual({ port: standby.port, standby: true })
      expect(yield* on([primary.port, standby.port], "prefer-standby")).toStrictEqual({ port: standby.port, standby: true })
      expect(yield* on([primary.port, standby.port], "any")).toStrictEqual({ port: primary.port, standby: false })
      // prefer-standby without a standby: any server will do.
      expect(yield* on([primary.port], "prefer-standby")).toStrictEqual({ port: primary.port, standby: false })
    }))

  it.scopedLive("a host that refuses or hangs is passed within createTimeout; no fit fails at acquireTimeout listing every host", () =>
    Effect.gen(function*() {
      const { primary } = cluster
      const refused = yield* Effect.promise(freePort)
      const { port: hanging } = yield* blackhole
      const ports = [refused, hanging, primary.port]

      // read-write: the first two are rejected, the primary is kept after one createTimeout (the layer's
      // start-up check makes that first connection).
      const [found, tookMs] = yield* whereAmI.pipe(
        Effect.provide(PgPool.layer({ url: urlOf(ports, "read-write"), maxSize: 1, createTimeout: "400 millis" })),
        Effect.timed,
        Effect.map(([took, row]) => [row, Duration.toMillis(took)] as const)
      )
      expect(found.port).toBe(primary.port)
      expect(tookMs).toBeGreaterThanOrEqual(350)
      expect(tookMs).toBeLessThan(2_000)

      // standby: nothing fits. The layer's start-up check fails after one walk, saying why for each host.
      const startUp = yield* Effect.flip(whereAmI.pipe(Effect.provide(PgPool.layer({
        url: urlOf(ports, "standby"),
        name: "want-standby",
        createTimeout: "300 millis"
      }))))
      expect(Option.getOrThrow(PgPool.noSuitableHost(startUp as SqlError.SqlError)).rejected.map((r) => r.port))
        .toStrictEqual(ports)

      // Without the check, a checkout fails at acquireTimeout, its error carrying the same list.
      const layer = PgPool.layer({
        url: urlOf(ports, "standby"),
        name: "want-standby",
        maxSize: 1,
        createTimeout: "300 millis",
        acquireTimeout: "1500 millis",
        initializationFailTimeout: false
      })
      const [took, exit] = yield* Effect.timed(Effect.exit(whereAmI.pipe(Effect.provide(layer))))
      expect(Duration.toMillis(took)).toBeGreaterThanOrEqual(1_400)
      expect(Duration.toMillis(took)).toBeLessThan(3_000)
      const error = failureOf(exit) as SqlError.SqlError
      expect(Option.getOrThrow(PgPool.poolError(error))._tag).toBe("PoolTimeoutError")
      const noHost = Option.getOrThrow(PgPool.noSuitableHost(error))
      expect(noHost).toBeInstanceOf(PgPool.NoSuitableHostError)
      expect(noHost.rejected.map((r) => r.port)).toStrictEqual(ports)
      expect(noHost.rejected[0]!.reason).toContain("ECONNREFUSED")
      expect(noHost.rejected[1]!.reason).toBe("no answer within createTimeout (300ms)")
      expect(noHost.rejected[2]!.reason).toBe("a primary (pg_is_in_recovery() = false)")
      expect(error.message).toContain(`pool "want-standby": no connection within 1s 500ms`)
      expect(error.message).toContain(`no host fits target_session_attrs=standby; tried 127.0.0.1:${refused} (`)
    }))

  it.live("every host failing in a way retrying cannot fix (no such database) fails the checkout at once", () =>
    Effect.gen(function*() {
      const { primary, standby } = cluster
      const layer = PgPool.layer({
        url: `postgres://postgres@${hostsOf(primary.port, standby.port)}/no_such_database?target_session_attrs=read-write`,
        acquireTimeout: "10 seconds",
        initializationFailTimeout: false
      })
      const [took, exit] = yield* Effect.timed(Effect.exit(whereAmI.pipe(Effect.provide(layer))))
      expect(Duration.toMillis(took)).toBeLessThan(3_000)
      const noHost = Option.getOrThrow(PgPool.noSuitableHost(failureOf(exit) as SqlError.SqlError))
      expect(noHost.retryable).toBe(false)
      expect(noHost.rejected.map((r) => r.reason.includes("3D000"))).toStrictEqual([true, true])
      expect(noHost.message).toContain("none can fit by retrying (not retried)")
    }))

  it.live("load_balance_hosts=random spreads connections over the hosts", () =>
    Effect.gen(function*() {
      const { primary, standby } = cluster
      const sql = yield* SqlClient.SqlClient
      const rows = yield* Effect.forEach(
        Array.from({ length: 16 }, () => 0),
        () => sql<{ port: number }>`SELECT inet_server_port() AS port, pg_sleep(0.2)`,
        { concurrency: "unbounded" }
      )
      const ports = new Set(rows.map(([row]) => row!.port))
      // 16 set-ups all landing on one of two hosts would happen once in 2^15 runs.
      expect([...ports].sort()).toStrictEqual([primary.port, standby.port].sort())
      const pool = yield* PgPool.PgPool
      expect((yield* pool.stats).connectionsCreated).toBe(16)
    }).pipe(Effect.provide(PgPool.layer({
      url: `${urlOf([cluster.primary.port, cluster.standby.port])}?load_balance_hosts=random`,
      maxSize: 16,
      maxConnecting: 16
    }))))

  it.live("a read pool beside the write pool: onReadPool sends SqlClient code to the standby", () =>
    Effect.gen(function*() {
      const { primary, standby } = cluster
      const sql = yield* SqlClient.SqlClient
      const id = randomUUID()
      yield* sql`INSERT INTO writes VALUES (${id}, 0)`
      expect(yield* whereAmI).toStrictEqual({ port: primary.port, standby: false })
      expect(yield* PgPool.onReadPool(whereAmI)).toStrictEqual({ port: standby.port, standby: true })
      // A write sent to the read pool is refused by the standby.
      const refused = yield* Effect.flip(PgPool.onReadPool(Effect.flatMap(SqlClient.SqlClient, (read) =>
        read`INSERT INTO writes VALUES (${randomUUID()}, 0)`)))
      expect((refused.cause as { code: string }).code).toBe("25006")
      const read = yield* PgPool.PgReadClient
      expect(read.pool.name).toBe("pg-read")
      // LISTEN needs the primary itself: a pool with a host list asks for listenUrl.
      const listenError = yield* Effect.flip(Stream.runDrain(read.listen("lifeguard_chan")))
      expect(listenError.message).toBe(
        `pool "pg-read": LISTEN needs the primary itself, and this pool has a list of 2 hosts; set listenUrl to a direct PostgreSQL url`
      )
    }).pipe(Effect.provide(Layer.mergeAll(
      PgPool.layer({ url: urlOf([cluster.standby.port, cluster.primary.port], "read-write"), maxSize: 2 }),
      PgPool.layerRead({ url: urlOf([cluster.primary.port, cluster.standby.port]), maxSize: 2 })
    ))))

  it.live("a server that turns read-only (25006) has its connection invalidated and the pool cleared", () =>
    Effect.gen(function*() {
      const { primary } = cluster
      const sql = yield* SqlClient.SqlClient
      const pool = yield* PgPool.PgPool
      /** ALTER SYSTEM on a connection that is writable whatever the server's default. */
      const setReadOnly = (on: boolean) =>
        Effect.promise(async () => {
          const client = new pg.Client({ connectionString: primary.url, options: "-c default_transaction_read_only=off" })
          await client.connect()
          try {
            await client.query(`ALTER SYSTEM SET default_transaction_read_only = ${on ? "on" : "off"}`)
            await client.query("SELECT pg_reload_conf()")
          } finally {
            await client.end()
          }
        })
      const write = sql`INSERT INTO writes VALUES (${randomUUID()}, 0)`
      yield* write
      const before = yield* pool.stats
      yield* setReadOnly(true)
      yield* Effect.addFinalizer(() => setReadOnly(false))
      // The reload reaches the server's sessions a moment later: write until it has.
      const refused = yield* write.pipe(Effect.repeat({ schedule: Schedule.spaced("20 millis"), times: 50 }), Effect.flip)
      expect((refused.cause as { code: string }).code).toBe("25006")
      const after = yield* pool.stats
      expect(after.generation).toBeGreaterThan(before.generation)
      expect(after).toMatchObject({ inUse: 0, idle: 0 })
      expect(after.connectionsClosed).toBe(before.connectionsClosed + 1)
      // New connections are checked: a read-only session is rejected, and the timeout says so.
      const error = yield* Effect.flip(write)
      expect(Option.getOrThrow(PgPool.noSuitableHost(error)).rejected[0]!.reason).toBe(
        "read-only session (transaction_read_only = on)"
      )
      yield* setReadOnly(false)
      yield* write.pipe(Effect.retry({ schedule: Schedule.spaced("20 millis"), times: 50 }))
    }).pipe(
      Effect.scoped,
      Effect.provide(PgPool.layer({
        url: urlOf([cluster.primary.port], "read-write"),
        maxSize: 1,
        acquireTimeout: "800 millis",
        createTimeout: "500 millis"
      }))
    ))
})

interface Attempt {
  readonly id: string
  readonly startedAt: number
  readonly endedAt: number
  readonly error: SqlError.SqlError | undefined
}

/**
 * The longest a set-up retry can sleep once `elapsedMs` into a run of failures: the pool retries after
 * 100, 200, 400, ... ms (capped at 5 s), each jittered between 80% and 120%.
 */
const backoffStepBound = (elapsedMs: number): number => {
  let step = 100
  for (let slept = 0.8 * step; slept <= elapsedMs && step < 5_000; slept += 0.8 * step) step = Math.min(step * 2, 5_000)
  return 1.2 * step
}

const acquireTimeoutMs = 2_000

/** Write load through a read-write pool while the primary stops and, `outageMs` later, the standby is promoted. */
const failover = (outageMs: number) =>
  Effect.gen(function*() {
    const { primary, standby } = yield* replicaSetScoped({ synchronous: true })
    yield* Effect.promise(() => adminQuery(primary.url, "CREATE TABLE writes (id text NOT NULL, worker int NOT NULL)"))
    const figures = yield* Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const pool = yield* PgPool.PgPool
      const read = yield* PgPool.PgReadClient
      const attempts: Array<Attempt> = []
      let stopping = false
      // Set once the old primary is gone: the first write acknowledged after it marks the recovery.
      const stoppedAt = yield* Ref.make(Number.POSITIVE_INFINITY)
      const recovered = yield* Deferred.make<number>()
      const enough = yield* Deferred.make<void>()
      const worker = (w: number) =>
        Effect.gen(function*() {
          while (!stopping) {
            // Client-generated ids, and no unique constraint: a write applied twice would show as two rows.
            const id = randomUUID()
            const startedAt = yield* Clock.currentTimeMillis
            const exit = yield* Effect.exit(sql`INSERT INTO writes VALUES (${id}, ${w})`)
            const endedAt = yield* Clock.currentTimeMillis
            attempts.push({ id, startedAt, endedAt, error: Exit.isFailure(exit) ? failureOf(exit) : undefined })
            if (Exit.isSuccess(exit)) {
              if (endedAt > (yield* Ref.get(stoppedAt))) yield* Deferred.succeed(recovered, endedAt)
              if (attempts.filter((a) => a.error === undefined).length >= 300) yield* Deferred.succeed(enough, undefined)
            }
            yield* Effect.sleep("5 millis")
          }
        })
      const load = yield* Effect.fork(Effect.forEach([1, 2, 3, 4, 5], worker, { concurrency: "unbounded", discard: true }))
      yield* Deferred.await(enough).pipe(Effect.timeout("20 seconds"))
      expect(yield* PgPool.onReadPool(whereAmI)).toStrictEqual({ port: standby.port, standby: true })
      const before = yield* pool.stats

      const stopStart = yield* Clock.currentTimeMillis
      yield* Effect.promise(() => primary.stop("fast"))
      yield* Ref.set(stoppedAt, yield* Clock.currentTimeMillis)
      // The failover manager takes its time before promoting (a scenario step, not a wait for the pool).
      yield* Effect.sleep(Duration.millis(outageMs))
      yield* Effect.promise(() => standby.promote())
      const writableAt = yield* Clock.currentTimeMillis
      const firstWrite = yield* Deferred.await(recovered).pipe(
        Effect.timeoutFail({ duration: "15 seconds", onTimeout: () => new Error("no write succeeded within 15 s of the promotion") })
      )
      // Keep writing a little on the new primary, then stop the load.
      const acknowledged = attempts.filter((a) => a.error === undefined).length
      yield* Effect.sleep("300 millis")
      stopping = true
      yield* Fiber.join(load)
      expect(attempts.filter((a) => a.error === undefined).length).toBeGreaterThan(acknowledged)

      const after = yield* pool.stats
      expect(after.generation).toBeGreaterThan(before.generation)
      // No checkout hung: every attempt ended within acquireTimeout (plus a loaded machine's slack).
      const longest = Math.max(...attempts.map((a) => a.endedAt - a.startedAt))
      expect(longest).toBeLessThan(acquireTimeoutMs + 1_500)
      // Every failure was a typed SqlError; those that got no connection say why.
      const failed = attempts.filter((a) => a.error !== undefined)
      for (const attempt of failed) expect(attempt.error!._tag).toBe("SqlError")
      // Those that waited out the outage timed out at acquireTimeout, naming both hosts and why neither fit.
      const noHost = failed.flatMap((a) => Option.toArray(PgPool.noSuitableHost(a.error!)))
      for (const error of noHost) expect(error.rejected.map((r) => r.port)).toStrictEqual([primary.port, standby.port])
      if (noHost.length > 0) {
        expect(noHost.some((error) => error.rejected[1]!.reason.startsWith("read-only session"))).toBe(true)
      }

      // The load's rows (worker > 0; the earlier tests wrote worker 0).
      const rows = yield* sql<{ id: string; n: number }>`SELECT id, count(*)::int AS n FROM writes WHERE worker > 0 GROUP BY id`
      const stored = new Map(rows.map((row) => [row.id, row.n]))
      const acked = attempts.filter((a) => a.error === undefined)
      const lost = acked.filter((a) => !stored.has(a.id))
      expect(lost).toStrictEqual([])
      expect(rows.filter((row) => row.n > 1)).toStrictEqual([])
      // Nothing appeared that was not written: every stored id is an acknowledged write or a failed attempt.
      const tried = new Set(attempts.map((a) => a.id))
      expect(rows.filter((row) => !tried.has(row.id))).toStrictEqual([])

      // New connections are on the new primary, and the read pool now reads there too.
      expect(yield* whereAmI).toStrictEqual({ port: standby.port, standby: false })
      const [readRow] = yield* read<{ port: number }>`SELECT inet_server_port() AS port`
      expect(readRow!.port).toBe(standby.port)

      const figures = {
        writesAcknowledged: acked.length,
        writesFailed: failed.length,
        noSuitableHost: noHost.length,
        stopMs: (yield* Ref.get(stoppedAt)) - stopStart,
        promoteMs: writableAt - (yield* Ref.get(stoppedAt)) - outageMs,
        firstWriteAfterStopMs: firstWrite - stopStart,
        firstWriteAfterWritableMs: firstWrite - writableAt,
        longestAttemptMs: longest
      }
      return figures
    }).pipe(Effect.provide(Layer.mergeAll(
      PgPool.layer({
        url: urlOf([primary.port, standby.port], "read-write"),
        name: "failover-rw",
        maxSize: 5,
        acquireTimeout: Duration.millis(acquireTimeoutMs),
        createTimeout: "1 second"
      }),
      PgPool.layerRead({ url: urlOf([primary.port, standby.port]), maxSize: 2 })
    )))
    console.log(`failover figures (outage ${outageMs} ms): ${JSON.stringify(figures)}`)
    // Within one backoff step of the new primary taking writes (plus a loaded machine's slack).
    const outage = figures.firstWriteAfterStopMs - figures.firstWriteAfterWritableMs
    expect(figures.firstWriteAfterWritableMs).toBeLessThan(backoffStepBound(outage) + 500)
    return figures
  })

describe("failover: the primary stops, the standby is promoted (synchronous replication)", () => {
  it.scopedLive("promoted at once: writes resume on the new primary; no acknowledged write lost, none applied twice", () =>
    Effect.asVoid(failover(0)), 60_000)

  it.scopedLive("promoted after longer than acquireTimeout: checkouts fail in time, naming each host, then writes resume", () =>
    Effect.gen(function*() {
      const figures = yield* failover(2_500)
      expect(figures.noSuitableHost).toBeGreaterThanOrEqual(1)
    }), 60_000)
})
