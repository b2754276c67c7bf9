/**
 * LISTEN on one dedicated connection outside the pool (a listening connection
 * must stay with its listeners, not go back), shared by every listening stream.
 *
 * @internal
 */
import { SqlError } from "@effect/sql/SqlError"
import * as Effect from "effect/Effect"
import * as RcRef from "effect/RcRef"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import pg from "pg"
import type { Resolved } from "./config.js"
import { close } from "./connection.js"
import { connectFailed, queryFailed } from "./errors.js"

interface Listener {
  readonly client: pg.Client
  /** LISTENing streams per channel: the channel is unlistened when its last stream ends. */
  readonly channels: Map<string, number>
}

/** @internal */
export const listenConnection = (config: Resolved, name: string): Effect.Effect<Listener, SqlError, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.async<Listener, SqlError>((resume) => {
      const client = new pg.Client({ ...config.client, application_name: `${config.applicationName}:listen` })
      // Losing the connection ends every listen stream (see listen); the error itself needs no handler.
      client.on("error", () => {})
      client.connect((error) =>
        resume(
          error
            ? Effect.fail(connectFailed(name, config.describe, error))
            : Effect.succeed({ client, channels: new Map() })
        )
      )
    }),
    ({ client }) => close(client)
  )

/** @internal */
export const listen = (
  listener: RcRef.RcRef<Listener, SqlError>,
  name: string,
  channel: string
): Stream.Stream<string, SqlError> =>
  Stream.asyncPush<string, SqlError>((emit) =>
    Effect.gen(function*() {
      const { channels, client } = yield* RcRef.get(listener)
      const onNotification = (message: pg.Notification) => {
        if (message.channel === channel && message.payload !== undefined) emit.single(message.payload)
      }
      const onEnd = () =>
        emit.fail(new SqlError({ message: `pool "${name}": the LISTEN connection closed; listen again to resume` }))
      const count = channels.get(channel) ?? 0
      channels.set(channel, count + 1)
      yield* Effect.addFinalizer(() => {
        client.off("notification", onNotification)
        client.off("end", onEnd)
        const left = (channels.get(channel) ?? 1) - 1
        if (left > 0) {
          channels.set(channel, left)
          return Effect.void
        }
        channels.delete(channel)
        return Effect.ignore(Effect.tryPromise(() => client.query(`UNLISTEN ${pg.escapeIdentifier(channel)}`)))
      })
      client.on("notification", onNotification)
      client.on("end", onEnd)
      if (count === 0) {
        yield* Effect.tryPromise({
          try: () => client.query(`LISTEN ${pg.escapeIdentifier(channel)}`),
          catch: (cause) => queryFailed(name, cause)
        })
      }
    })
  )
