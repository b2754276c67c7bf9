import { HttpRouter, HttpServer } from "@effect/platform"
import { NodeHttpServer } from "@effect/platform-node"
import { describe, expect, it } from "@effect/vitest"
import { Reactivity } from "@effect/experimental"
import { Context, Duration, Effect, Exit, Fiber, Layer, Scope } from "effect"
import { createServer } from "node:http"
import { PoolHealth, type PoolEvent } from "../src/index.js"
import { PoolHealthHttp } from "../src/http/index.js"
import { PgPool } from "../src/pg/index.js"
import { holdConnection, makeTestPool } from "./utils/pool.js"
import { sharedServerScoped } from "./utils/postgres.js"

const deadline = Duration.seconds(5)

/** Serves `app` on a free port of 127.0.0.1; the server stops (within the deadline) when the scope closes. */
const serve = (app: HttpRouter.HttpRouter) =>
  Effect.gen(function*() {
    const scope = yield* Effect.acquireRelease(Scope.make(), (scope) =>
      Scope.close(scope, Exit.void).pipe(
        Effect.timeoutFail({ duration: deadline, onTimeout: () => new Error(`the HTTP server did not stop within ${Duration.format(deadline)}`) }),
        Effect.orDie
      ))
    const context = yield* Layer.buildWithScope(NodeHttpServer.layer(() => createServer(), { port: 0, host: "127.0.0.1" }), scope).pipe(
      Effect.timeoutFail({ duration: deadline, onTimeout: () => new Error(`the HTTP server did not start within ${Duration.format(deadline)}`) })
    )
    yield* HttpServer.serveEffect(app).pipe(Effect.provide(context), Scope.extend(scope))
    const address = Context.get(context, HttpServer.HttpServer).address
    if (address._tag !== "TcpAddress") return yield* Effect.die(new Error(`expected a TCP address, got ${address._tag}`))
    return `http://127.0.0.1:${address.port}`
  })

const get = (url: string) =>
  Effect.tryPromise(async (signal) => {
    const response = await fetch(url, { signal })
    return {
      status: response.status,
      contentType: response.headers.get("content-type"),
      cacheControl: response.headers.get("cache-control"),
      body: await response.json() as PoolHealth.HealthJson
    }
  }).pipe(Effect.timeoutFail({ duration: deadline, onTimeout: () => new Error(`GET ${url} got no answer within 5s`) }))

describe("PoolHealthHttp on a real server", () => {
  it.scopedLive("200 while ready, 503 with the reason as soon as the drain starts, 503 once closed", () =>
    Effect.gen(function*() {
      const { pool } = yield* makeTestPool({ name: "orders", drainTimeout: "30 seconds" })
      const health = yield* PoolHealth.make(pool)
      const base = yield* serve(HttpRouter.empty.pipe(PoolHealthHttp.route(health)))
      const url = `${base}${PoolHealthHttp.defaultPath}`

      const ready = yield* get(url)
      expect(ready.status).toBe(200)
      expect(ready.contentType).toMatch(/^application\/json/)
      expect(ready.cacheControl).toBe("no-store")
      expect(ready.body).toStrictEqual({
        status: "ready",
        pool: "orders",
        checkedAt: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
        connections: { total: 0, idle: 0, inUse: 0, pending: 0, waiting: 0 },
        generation: 0,
        timeouts: 0
      })

      // A held connection keeps the drain going.
      const held = yield* holdConnection(pool)
      yield* Effect.addFinalizer(() => held.release)
      yield* held.connection
      const drain = yield* Effect.fork(pool.drain)
      yield* Effect.yieldNow()
      const draining = yield* get(url)
      expect(draining.status).toBe(503)
      expect(draining.body).toMatchObject({
        status: "draining",
        reason: "the pool is draining: 1 connection(s) still checked out",
        connections: { inUse: 1 }
      })

      yield* held.release
      yield* Fiber.join(drain)
      const closed = yield* get(url)
      expect(closed.status).toBe(503)
      expect(closed.body).toMatchObject({ status: "down", reason: "the pool is closed" })
    }))

  it.scopedLive("a route at a path of one's own, beside the app's routes", () =>
    Effect.gen(function*() {
      const { pool } = yield* makeTestPool({ name: "mounted" })
      const health = yield* PoolHealth.make(pool)
      const base = yield* serve(HttpRouter.empty.pipe(PoolHealthHttp.route(health, "/ready")))
      const ready = yield* get(`${base}/ready`)
      expect(ready).toMatchObject({ status: 200, body: { status: "ready", pool: "mounted" } })
    }))

  it.scopedLive("with lifeguard/pg, SELECT 1 is the probe, and the events name the server", () =>
    Effect.gen(function*() {
      const server = yield* sharedServerScoped
      const events: Array<PoolEvent.PoolEvent> = []
      const client = yield* PgPool.make({ url: server.url, name: "pg-health", onEvent: (e) => events.push(e) }).pipe(
        Effect.provide(Reactivity.layer)
      )
      const health = yield* PoolHealth.make(client.pool, { probe: client`SELECT 1` })
      const base = yield* serve(HttpRouter.empty.pipe(PoolHealthHttp.route(health)))
      const ready = yield* get(`${base}${PoolHealthHttp.defaultPath}`)
      expect(ready.status).toBe(200)
      expect(ready.body).toMatchObject({ status: "ready", pool: "pg-health", probe: { ok: true } })
      expect(ready.body.connections.idle).toBe(1)
      const { hostname, port } = new URL(server.url)
      expect(events.map((e) => e.address)).toContain(`${hostname}:${port || 5432}`)
      expect(new Set(events.map((e) => e.address)).size).toBe(1)
    }))
})
