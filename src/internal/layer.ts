/** @internal */
import type * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import type * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"
import type { Pool } from "../Pool.js"
import type { Options, Settings } from "../PoolConfig.js"
import type { ConnectTimeoutError, PoolConfigError } from "../PoolError.js"
import { make } from "./pool.js"

/** @internal */
export interface MakeLayer {
  <Self, A, E = never, R = never>(
    tag: Context.Tag<Self, Pool<A, E>>,
    options: Options<A, E, R> & { readonly initializationFailTimeout?: undefined }
  ): Layer.Layer<Self, PoolConfigError, Exclude<R, Scope.Scope>>
  <Self, A, E = never, R = never>(
    tag: Context.Tag<Self, Pool<A, E>>,
    options: Options<A, E, R>
  ): Layer.Layer<Self, PoolConfigError | E | ConnectTimeoutError, Exclude<R, Scope.Scope>>
}

/** @internal */
export const layer: MakeLayer = (<Self, A, E, R>(
  tag: Context.Tag<Self, Pool<A, E>>,
  options: Options<A, E, R>
): Layer.Layer<Self, PoolConfigError | E | ConnectTimeoutError, Exclude<R, Scope.Scope>> =>
  Layer.scoped(tag, make(options))) as MakeLayer

/** @internal */
export const layerConfig = <Self, A, E, R>(
  tag: Context.Tag<Self, Pool<A, E>>,
  options: Options<A, E, R>,
  config: Config.Config<Settings>
): Layer.Layer<Self, PoolConfigError | ConfigError.ConfigError | E | ConnectTimeoutError, Exclude<R, Scope.Scope>> =>
  Layer.scoped(
    tag,
    Effect.flatMap(config, (settings) => make({ ...settings, ...options }))
  )
