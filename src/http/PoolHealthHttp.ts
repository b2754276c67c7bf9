/**
 * The readiness endpoint for a pool, as an @effect/platform route: `GET`
 * answers the `PoolHealth` check as JSON, 200 while the pool is serving
 * (`ready`, `degraded`) and 503 otherwise (`draining`, `down`). It reads the
 * pool on every request, so it turns 503 the moment the drain starts and a load
 * balancer stops sending traffic before the pool closes.
 *
 * @example
 * ```ts
 * import { HttpRouter, HttpServer } from "@effect/platform"
 * import { PoolHealth } from "lifeguard"
 * import { PoolHealthHttp } from "lifeguard/http"
 *
 * const app = Effect.gen(function*() {
 *   const health = yield* PoolHealth.make(pool, { probe: sql`SELECT 1` })
 *   return HttpRouter.empty.pipe(PoolHealthHttp.route(health), HttpRouter.get("/", hello))
 * })
 * ```
 *
 * @since 0.1.0
 */
import type * as HttpApp from "@effect/platform/HttpApp"
import * as HttpRouter from "@effect/platform/HttpRouter"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Effect from "effect/Effect"
import * as PoolHealth from "../PoolHealth.js"

/**
 * The route's default path.
 *
 * @since 0.1.0
 * @category constants
 */
export const defaultPath = "/health/ready"

/**
 * The handler alone, to mount wherever you like.
 *
 * @since 0.1.0
 * @category handlers
 */
export const app = (health: PoolHealth.HealthCheck): HttpApp.Default =>
  Effect.map(health.check, (result) =>
    HttpServerResponse.unsafeJson(PoolHealth.toJson(result), {
      status: PoolHealth.isServing(result) ? 200 : 503,
      // A cached answer would hide the switch to draining.
      headers: { "cache-control": "no-store" }
    }))

/**
 * Adds `GET <path>` (default {@link defaultPath}) to a router.
 *
 * @since 0.1.0
 * @category routing
 */
export const route = (
  health: PoolHealth.HealthCheck,
  path: HttpRouter.PathInput = defaultPath
): <E, R>(router: HttpRouter.HttpRouter<E, R>) => HttpRouter.HttpRouter<E, R> => HttpRouter.get(path, app(health))
