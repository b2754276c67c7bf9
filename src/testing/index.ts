/**
 * `lifeguard/testing`: an in-memory connection factory with controllable
 * set-up delay, failures and broken connections, for testing code that uses
 * a pool (under `TestClock` or live).
 *
 * @example
 * ```ts
 * import { Effect, TestClock } from "effect"
 * import { Pool } from "lifeguard"
 * import { TestFactory } from "lifeguard/testing"
 *
 * const program = Effect.gen(function*() {
 *   const factory = yield* TestFactory.make({ connectDelay: "100 millis" })
 *   const pool = yield* Pool.make({ acquire: factory.acquire, validate: factory.validate })
 *   yield* factory.failNext(2)
 *   // ...drive the pool, then assert on factory.counters()
 * })
 * ```
 *
 * @since 0.1.0
 */
import * as TestFactory from "./TestFactory.js"

export {
  /**
   * @since 0.1.0
   */
  TestFactory
}
