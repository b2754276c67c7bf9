/**
 * One pooled PostgreSQL connection: a `pg.Client` that knows its transaction
 * status, whether a query is still running on it, and whether it is gone;
 * plus the server-side cancel used when a fiber running a query is interrupted.
 *
 * @internal
 */
import type { SqlError } from "@effect/sql/SqlError"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Net from "node:net"
import pg from "pg"
import { isConnectionGone, queryFailed } from "./errors.js"

/** What a connection reports to its pool. */
export interface Owner {
  readonly name: string
  /** How long an interrupted query may take to stop after its cancel before the connection is given up. */
  readonly cancelTimeout: number
  /** Errors after which this pool must not reuse the connection, beyond those that mean it is gone. */
  readonly unfit: (error: unknown) => boolean
  /** The connection just became unusable (called once, from a `pg` callback). */
  readonly onGone: (connection: PgConnection, error: unknown) => void
}

/** @internal */
export class PgConnection extends pg.Client {
  /** From the last ReadyForQuery: "I" idle, "T" in a transaction block, "E" in a failed one. */
  txStatus = "I"
  /** Why the connection can no longer be used; undefined while it can. */
  gone: unknown = undefined
  /** Queries sent and not yet answered. */
  running = 0
  /** Called once `running` drops back to zero (an interrupted query finishing after its cancel). */
  onSettled: (() => void) | undefined = undefined
  /** Called at the next ReadyForQuery, or when the connection goes (see `awaitReady`). */
  onReady: (() => void) | undefined = undefined
  /** Stamped by the pool at set-up: lets one server shutdown clear the pool once, not once per connection. */
  epoch = 0
  /** Cancels the running query on the server and waits until it stopped (see `cancelRunning`). */
  readonly cancelQuery: Effect.Effect<void>
  /** Like `cancelQuery`, then makes the connection fit for the next user (set by the pool that owns it). */
  cancelAndSettle: Effect.Effect<void> = Effect.void
  /** The socket factory the connection was made with, for the cancel request's socket. */
  readonly socketFactory: pg.ClientConfig["stream"]

  constructor(config: pg.ClientConfig, readonly owner: Owner) {
    super(config)
    this.socketFactory = config.stream
    this.cancelQuery = Effect.suspend(() => this.running === 0 ? Effect.void : cancelRunning(this))
    this.on("error", (error) => this.markGone(error))
    this.on("end", () => this.markGone(new Error("Connection terminated")))
    this.connection.on("readyForQuery", (message: { readonly status: string }) => {
      this.txStatus = message.status
      this.ready()
    })
  }

  markGone(error: unknown): void {
    if (this.gone !== undefined) return
    this.gone = error
    this.owner.onGone(this, error)
    this.ready()
  }

  private ready(): void {
    const ready = this.onReady
    this.onReady = undefined
    ready?.()
  }

  /** True when it can go back to the pool as is: alive, idle, outside any transaction, its status known. */
  get clean(): boolean {
    return this.gone === undefined && this.running === 0 && this.txStatus === "I" && this.isReady
  }

  /**
   * Whether the server's ReadyForQuery for the last statement is in (pg's own
   * field): pg calls a failed statement back at its ErrorResponse, before it,
   * while `txStatus` still says what it was before the statement.
   */
  get isReady(): boolean {
    return (this as unknown as { readonly readyForQuery: boolean }).readyForQuery
  }

  /**
   * Sends one statement. `map` turns pg's result into what the caller gets;
   * `onDone` sees the outcome first (the pooled path settles a dirty connection
   * there); `canceler` runs if the caller is interrupted meanwhile.
   */
  run<A>(
    sql: string,
    params: ReadonlyArray<unknown>,
    arrays: boolean,
    map: (result: any) => A,
    onDone: (connection: PgConnection, result: Effect.Effect<A, SqlError>) => Effect.Effect<A, SqlError>,
    canceler: Effect.Effect<void>
  ): Effect.Effect<A, SqlError> {
    // Hot path: the callbacks are inline and anonymous, so no per-call function naming (tsx keepNames).
    return Effect.async<A, SqlError>((resume) => {
      this.send(sql, params, arrays, map, (result) => resume(onDone(this, result)))
      return canceler
    })
  }

  /**
   * Sends one statement and calls `done` from pg's callback with its outcome
   * and whether the connection is clean after it: `run` without a fiber.
   */
  send<A>(
    sql: string,
    params: ReadonlyArray<unknown>,
    arrays: boolean,
    map: (result: any) => A,
    done: (result: Effect.Effect<A, SqlError>, clean: boolean) => void
  ): void {
    this.running++
    if (arrays) {
      this.query(
        { text: sql, values: params as Array<unknown>, rowMode: "array" },
        (error: Error | null, result: any) => done(this.outcome(error, result, map), this.clean)
      )
    } else {
      this.query(sql, params as Array<unknown>, (error: Error | null, result: any) =>
        done(this.outcome(error, result, map), this.clean))
    }
  }

  private outcome<A>(error: Error | null, result: any, map: (result: any) => A): Effect.Effect<A, SqlError> {
    this.finished()
    if (error) {
      if (isConnectionGone(error) || this.owner.unfit(error)) this.markGone(error)
      return Effect.fail(queryFailed(this.owner.name, error))
    }
    // A throwing `map` (a user's row transform) fails the statement as a defect; thrown here it would
    // escape into pg's callback, leave the caller waiting and the connection out.
    try {
      return Effect.succeed(map(result))
    } catch (defect) {
      return Effect.die(defect)
    }
  }

  /** Marks the end of a statement or cursor. */
  finished(): void {
    this.running--
    if (this.running === 0 && this.onSettled !== undefined) {
      const settled = this.onSettled
      this.onSettled = undefined
      settled()
    }
  }
}

/** Rows of a result; a multi-statement query gives one array of rows per statement. */
export const rowsOf = (result: any): ReadonlyArray<any> =>
  Array.isArray(result) ? result.map((r) => r.rows ?? []) : result.rows ?? []

const CANCEL_REQUEST_CODE = 80877102

/**
 * Asks the server to cancel what the connection runs (a CancelRequest on a
 * separate socket, which needs no free pooled connection), then waits for the
 * query to end. Resolves only once the query is over, so the connection is
 * never handed on while a late cancel could still hit the next user's query.
 * If it does not stop within `cancelTimeout`, the connection is given up.
 */
const cancelRunning = (connection: PgConnection): Effect.Effect<void> =>
  Effect.suspend(() => {
    // Registered now, not when the wait below starts (a fiber hop later): the query may end in between.
    let requestDone = false
    let queryDone = false
    let wake = () => {}
    const finish = () => {
      if (requestDone && queryDone) wake()
    }
    connection.onSettled = () => {
      queryDone = true
      finish()
    }
    const abandonRequest = sendCancelRequest(connection, () => {
      requestDone = true
      finish()
    })
    const stopped = Effect.async<void>((resume) => {
      if (requestDone && queryDone) resume(Effect.void)
      else wake = () => resume(Effect.void)
    })
    return orGiveUp(stopped, connection.owner.cancelTimeout, () => {
      abandonRequest()
      connection.onSettled = undefined
      connection.markGone(new Error(`a cancelled query did not stop within ${connection.owner.cancelTimeout} ms`))
    })
  })

/**
 * `effect`, or `giveUp` once `millis` passed on the Clock (so TestClock drives it) without it
 * ending. `effect` is made interruptible: these waits run in cancelers and finalizers, where a
 * timeout could not otherwise stop them.
 */
export const orGiveUp = (effect: Effect.Effect<void>, millis: number, giveUp: () => void): Effect.Effect<void> =>
  Effect.timeout(Effect.interruptible(effect), Duration.millis(millis)).pipe(
    Effect.catchTag("TimeoutException", () => Effect.sync(giveUp))
  )

/**
 * Waits for the ReadyForQuery that follows a failed statement (or for the
 * connection to go), up to `cancelTimeout`; after that the connection is given up.
 */
export const awaitReady = (connection: PgConnection): Effect.Effect<void> =>
  orGiveUp(
    Effect.async<void>((resume) => {
      if (connection.isReady || connection.gone !== undefined) resume(Effect.void)
      else connection.onReady = () => resume(Effect.void)
    }),
    connection.owner.cancelTimeout,
    () => {
      connection.onReady = undefined
      connection.markGone(new Error(`no ReadyForQuery within ${connection.owner.cancelTimeout} ms after a failed statement`))
    }
  )

/**
 * Sends a CancelRequest for what `connection` runs; `done` is called once the
 * server has taken it (or it could not be sent). Returns a function that gives
 * up on a request still in flight.
 */
export const sendCancelRequest = (connection: PgConnection, done: () => void): () => void => {
  const { processID: pid, secretKey: secret } = connection as unknown as {
    readonly processID: number | null
    readonly secretKey: number | null
  }
  if (pid === null || secret === null) {
    done()
    return () => {}
  }
  const socket = (connection.socketFactory?.() ?? new Net.Socket()) as Net.Socket
  let finished = false
  const end = () => {
    if (finished) return
    finished = true
    socket.destroy()
    done()
  }
  socket.once("error", end)
  socket.once("close", end)
  socket.once("connect", () => {
    const packet = Buffer.allocUnsafe(16)
    packet.writeInt32BE(16, 0)
    packet.writeInt32BE(CANCEL_REQUEST_CODE, 4)
    packet.writeInt32BE(pid, 8)
    packet.writeInt32BE(secret, 12)
    // The server reads the request, signals the backend, then closes: "close" means delivered.
    socket.write(packet)
  })
  // pg resolved host and port (url, fields, PG* variables, defaults) when it made the client.
  if (connection.host.startsWith("/")) socket.connect(`${connection.host}/.s.PGSQL.${connection.port}`)
  else socket.connect(connection.port, connection.host)
  return () => socket.destroy()
}

/** Closes a connection politely, or drops its socket if the server does not answer within a second. */
export const close = (client: pg.Client): Effect.Effect<void> =>
  orGiveUp(
    Effect.async<void>((resume) => {
      client.end(() => resume(Effect.void))
    }),
    1_000,
    () => client.connection.stream.destroy()
  )
