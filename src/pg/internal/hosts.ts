/**
 * Several hosts, as libpq takes them: a url with a host list
 * (`postgres://h1:5432,h2:5433/db?target_session_attrs=read-write`) or the
 * `hosts` option, `target_session_attrs` and `load_balance_hosts`. A set-up
 * walks the hosts in order (shuffled with `random`), connects to each within
 * `createTimeout`, checks the server's role and keeps the first that fits.
 *
 * @internal
 */
import { SqlError } from "@effect/sql/SqlError"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as ExecutionStrategy from "effect/ExecutionStrategy"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import * as Random from "effect/Random"
import * as Redacted from "effect/Redacted"
import * as Scope from "effect/Scope"
import type pg from "pg"
import { defaults } from "../../internal/config.js"
import type { Options } from "../PgPool.js"
import type { PgConnection } from "./connection.js"

/**
 * libpq's `target_session_attrs`: which servers a connection may stay on.
 *
 * @internal
 */
export type TargetSessionAttrs = "any" | "read-write" | "read-only" | "primary" | "standby" | "prefer-standby"

const targetSessionAttrs: ReadonlySet<string> = new Set([
  "any",
  "read-write",
  "read-only",
  "primary",
  "standby",
  "prefer-standby"
])

/** @internal */
export interface Target {
  readonly host: string
  readonly port: number
  /** The connection url rewritten to this host alone, when the options gave a url. */
  readonly url: string | undefined
}

/** One host a set-up tried, and why it was not kept. */
export interface Rejection {
  readonly host: string
  readonly port: number
  readonly reason: string
  /** False for a set-up error retrying cannot fix (wrong credentials, no such database, ...). */
  readonly retryable: boolean
}

/**
 * No host fitted `target_session_attrs` (or none could be reached): every
 * host tried, and why each was rejected.
 *
 * @internal
 */
export class NoSuitableHostError extends Data.TaggedError("NoSuitableHostError")<{
  readonly pool: string
  readonly targetSessionAttrs: TargetSessionAttrs
  readonly rejected: ReadonlyArray<Rejection>
}> {
  /** Whether a later set-up could find a host: false when every host failed in a way retrying cannot fix. */
  get retryable(): boolean {
    return this.rejected.some((r) => r.retryable)
  }
  override get message(): string {
    const tried = this.rejected.map((r) => `${r.host}:${r.port} (${r.reason})`).join(", ")
    return `pool "${this.pool}": no host fits target_session_attrs=${this.targetSessionAttrs}; tried ${tried}` +
      (this.retryable ? "" : "; none can fit by retrying (not retried)")
  }
}

/**
 * The pool's `isRetryable` with a host list: a `NoSuitableHostError` is
 * retryable unless every host failed permanently; other errors as `base` says.
 *
 * @internal
 */
export const retryableWith = (base: (error: SqlError) => boolean) => (error: SqlError): boolean =>
  error.cause instanceof NoSuitableHostError ? error.cause.retryable : base(error)

/** @internal */
export interface HostList {
  /** The options with a single-host url (the first host), for everything that is not host-specific. */
  readonly options: Options
  readonly targets: ReadonlyArray<Target>
  readonly targetSessionAttrs: TargetSessionAttrs
  readonly loadBalance: boolean
  readonly problems: ReadonlyArray<string>
}

const secret = (value: string | Redacted.Redacted | undefined): string | undefined =>
  value === undefined ? undefined : Redacted.isRedacted(value) ? Redacted.value(value) : value

/** `host`, `host:port`, `[v6]`, `[v6]:port`. */
const parseHost = (text: string, defaultPort: number, problems: Array<string>): Target | undefined => {
  const match = /^(\[[^\]]+\]|[^:]*)(?::(\d*))?$/.exec(text.trim())
  const host = match?.[1]?.replace(/^\[(.*)\]$/, "$1") ?? ""
  // "db1:" (a port left off) is a mistake, not a request for the default port.
  const port = match?.[2] === undefined ? defaultPort : Number(match[2])
  if (host === "" || !Number.isInteger(port) || port < 1 || port > 65535) {
    problems.push(`hosts: ${JSON.stringify(text)} is not host or host:port (a port is a whole number from 1 to 65535)`)
    return undefined
  }
  return { host, port, url: undefined }
}

/** The url with its authority's host part replaced, and the libpq-only parameters taken out. */
const rewriteUrl = (prefix: string, userinfo: string, host: string, rest: string): string => {
  const [beforeQuery, query] = splitOnce(rest, "?")
  if (query === undefined) return `${prefix}${userinfo}${host}${rest}`
  const params = new URLSearchParams(query)
  params.delete("target_session_attrs")
  params.delete("load_balance_hosts")
  const kept = params.toString()
  return `${prefix}${userinfo}${host}${beforeQuery}${kept === "" ? "" : `?${kept}`}`
}

const splitOnce = (text: string, separator: string): readonly [string, string | undefined] => {
  const at = text.indexOf(separator)
  return at < 0 ? [text, undefined] : [text.slice(0, at), text.slice(at + 1)]
}

const formatHost = (host: string) => (host.includes(":") ? `[${host}]` : host)

/**
 * Reads the host list and the libpq parameters from the url (which wins, as
 * in pg), else from `hosts` / `host` (comma-separated, as libpq's `host`) and
 * `PGHOST`, `PGTARGETSESSIONATTRS`, `PGLOADBALANCEHOSTS`.
 *
 * @internal
 */
export const resolveHosts = (options: Options): HostList => {
  const problems: Array<string> = []
  const url = secret(options.url)
  const defaultPort = options.port ?? (process.env.PGPORT ? Number(process.env.PGPORT) : 5432)
  let targets: Array<Target> = []
  let fromUrl: { attrs: string | undefined; balance: string | undefined } = { attrs: undefined, balance: undefined }
  let single = options
  const urlParts = url === undefined ? undefined : /^([a-z][a-z0-9+.-]*:\/\/)([^/?#]*)(.*)$/i.exec(url)
  if (urlParts !== undefined && urlParts !== null) {
    const [, prefix, authority, rest] = urlParts as unknown as [string, string, string, string]
    const at = authority.lastIndexOf("@")
    const userinfo = at < 0 ? "" : authority.slice(0, at + 1)
    const hostPart = authority.slice(at + 1)
    const query = new URLSearchParams(splitOnce(rest, "?")[1] ?? "")
    fromUrl = {
      attrs: query.get("target_session_attrs") ?? undefined,
      balance: query.get("load_balance_hosts") ?? undefined
    }
    // One host (or none: a unix socket given as ?host=...) is pg's to read, and config's to check.
    if (hostPart.includes(",")) {
      for (const text of hostPart.split(",")) {
        const target = parseHost(decodeURIComponent(text), defaultPort, problems)
        if (target !== undefined) {
          const authorityHost = `${formatHost(target.host)}:${target.port}`
          targets.push({ ...target, url: rewriteUrl(prefix, userinfo, authorityHost, rest) })
        }
      }
      if (targets.length > 0) single = { ...options, url: targets[0]!.url }
    } else if (fromUrl.attrs !== undefined || fromUrl.balance !== undefined) {
      single = { ...options, url: rewriteUrl(prefix, userinfo, hostPart, rest) }
    }
  } else if (options.hosts !== undefined && options.hosts.length > 0) {
    for (const entry of options.hosts) {
      const target = typeof entry === "string"
        ? parseHost(entry, defaultPort, problems)
        : parseHost(`${formatHost(entry.host)}:${entry.port ?? defaultPort}`, defaultPort, problems)
      if (target !== undefined) targets.push(target)
    }
  } else {
    const host = options.host ?? process.env.PGHOST
    if (host !== undefined && host.includes(",")) {
      targets = host.split(",").flatMap((text) => {
        const target = parseHost(text, defaultPort, problems)
        return target === undefined ? [] : [target]
      })
    }
  }
  if (targets.length > 0 && single.url === undefined) {
    single = { ...options, host: targets[0]!.host, port: targets[0]!.port }
  }

  const attrs = fromUrl.attrs ?? options.targetSessionAttrs ?? process.env.PGTARGETSESSIONATTRS ?? "any"
  if (!targetSessionAttrs.has(attrs)) {
    problems.push(
      `targetSessionAttrs (target_session_attrs) must be one of ${[...targetSessionAttrs].join(", ")} (got ${JSON.stringify(attrs)})`
    )
  }
  const balance = fromUrl.balance ?? options.loadBalanceHosts ?? process.env.PGLOADBALANCEHOSTS ?? "disable"
  if (balance !== "disable" && balance !== "random") {
    problems.push(`loadBalanceHosts (load_balance_hosts) must be "disable" or "random" (got ${JSON.stringify(balance)})`)
  }
  return {
    options: single,
    targets,
    targetSessionAttrs: attrs as TargetSessionAttrs,
    loadBalance: balance === "random",
    problems
  }
}

/** True when set-ups must walk hosts or check roles; otherwise the plain single-host set-up runs. */
export const needsWalk = (list: HostList): boolean => list.targets.length > 1 || list.targetSessionAttrs !== "any"

/** The list to walk: one host given the plain way becomes the only target. */
export const walkList = (list: HostList, client: pg.ClientConfig): HostList =>
  list.targets.length > 0
    ? list
    : { ...list, targets: [{ host: client.host ?? "localhost", port: client.port ?? 5432, url: client.connectionString }] }

/** The `pg.Client` settings for one host. */
export const clientFor = (base: pg.ClientConfig, target: Target): pg.ClientConfig =>
  target.url === undefined
    ? { ...base, host: target.host, port: target.port }
    : { ...base, host: target.host, port: target.port, connectionString: target.url }

/** `createTimeout` in milliseconds, or undefined when it is not a valid duration (the pool reports that). */
export const perHostTimeout = (options: Options): number | undefined => {
  const input = options.createTimeout ?? options.connectTimeout
  if (input === undefined) return defaults.createTimeout
  return Option.getOrUndefined(Option.map(Duration.decodeUnknown(input), Duration.toMillis))
}

/** Whether a query error means the server stopped taking writes, for a pool that wants them (SQLSTATE 25006). */
export const becameReadOnly = (attrs: TargetSessionAttrs): (error: unknown) => boolean =>
  attrs === "read-write" || attrs === "primary"
    ? (error) =>
      typeof error === "object" && error !== null && "code" in error && error.code === "25006"
    : () => false

/** What a server says about itself after connecting. */
export interface Role {
  readonly standby: boolean
  readonly readOnly: boolean
}

const roleQuery = "SELECT pg_is_in_recovery() AS standby, current_setting('transaction_read_only') AS read_only"

/** @internal */
export const roleOf = (connection: PgConnection): Effect.Effect<Role, SqlError> =>
  connection.run(
    roleQuery,
    [],
    false,
    (result) => ({ standby: result.rows[0].standby === true, readOnly: result.rows[0].read_only === "on" }),
    (_, result) => result,
    connection.cancelQuery
  )

/** Why a server of this role does not fit, or undefined when it does ("prefer-standby": see `walk`). */
const misfit = (attrs: TargetSessionAttrs, role: Role): string | undefined => {
  switch (attrs) {
    case "read-write":
      return role.readOnly ? `read-only session (transaction_read_only = on${role.standby ? ", a standby" : ""})` : undefined
    case "read-only":
      return role.readOnly ? undefined : "accepts writes (transaction_read_only = off)"
    case "primary":
      return role.standby ? "a standby (pg_is_in_recovery() = true)" : undefined
    case "standby":
    case "prefer-standby":
      return role.standby ? undefined : "a primary (pg_is_in_recovery() = false)"
    case "any":
      return undefined
  }
}

/** The driver's words for a set-up failure, with the SQLSTATE when the server gave one. */
const describeError = (error: unknown): string => {
  const cause = error instanceof SqlError && error.cause !== undefined ? error.cause : error
  const message = cause instanceof Error ? cause.message : String(cause)
  const code = typeof cause === "object" && cause !== null && "code" in cause ? cause.code : undefined
  return typeof code === "string" && /^[0-9A-Z]{5}$/.test(code) ? `${message}, SQLSTATE ${code}` : message
}

/**
 * The set-up for a host list: tries each host (set up by `connect`, then its
 * role checked) within `timeoutMs`, and returns the first that fits. A
 * rejected host's connection is closed before the next is tried. With
 * "prefer-standby", the first reachable non-standby is kept open as the
 * fallback while the rest are tried, and used when no standby answers.
 *
 * @internal
 */
export const walk = <C>(
  pool: string,
  list: HostList,
  timeoutMs: number,
  connect: (target: Target) => Effect.Effect<C, SqlError, Scope.Scope>,
  checkRole: (connection: C) => Effect.Effect<Role, SqlError>,
  isRetryable: (error: SqlError) => boolean
): Effect.Effect<C, SqlError, Scope.Scope> =>
  Effect.gen(function*() {
    const outer = yield* Effect.scope
    const order = list.loadBalance ? Array.from(yield* Random.shuffle(list.targets)) : list.targets
    const attrs = list.targetSessionAttrs
    const rejected: Array<Rejection> = []
    let fallback: { readonly connection: C; readonly scope: Scope.CloseableScope } | undefined
    for (const target of order) {
      // Each host in a scope of its own: a rejected one is closed now, the kept one with the connection.
      const scope = yield* Scope.fork(outer, ExecutionStrategy.sequential)
      const attempt = connect(target).pipe(
        Effect.flatMap((connection): Effect.Effect<{ readonly connection: C; readonly role: Role | undefined }, SqlError> =>
          attrs === "any"
            ? Effect.succeed({ connection, role: undefined })
            : Effect.map(checkRole(connection), (role) => ({ connection, role }))
        ),
        Scope.extend(scope),
        Effect.timeoutFail({
          duration: timeoutMs,
          onTimeout: () => new SqlError({ message: `no answer within createTimeout (${Duration.format(Duration.millis(timeoutMs))})` })
        }),
        Effect.either
      )
      const outcome = yield* attempt
      if (outcome._tag === "Left") {
        yield* Scope.close(scope, Exit.void)
        rejected.push({
          host: target.host,
          port: target.port,
          reason: describeError(outcome.left),
          retryable: isRetryable(outcome.left)
        })
        continue
      }
      const { connection, role } = outcome.right
      const why = role === undefined ? undefined : misfit(attrs, role)
      if (why === undefined) {
        if (fallback !== undefined) yield* Scope.close(fallback.scope, Exit.void)
        return connection
      }
      if (attrs === "prefer-standby" && fallback === undefined) {
        fallback = { connection, scope }
        continue
      }
      yield* Scope.close(scope, Exit.void)
      rejected.push({ host: target.host, port: target.port, reason: why, retryable: true })
    }
    if (fallback !== undefined) return fallback.connection
    const error = new NoSuitableHostError({ pool, targetSessionAttrs: attrs, rejected })
    return yield* Effect.fail(new SqlError({ cause: error, message: error.message }))
  })

/**
 * The `NoSuitableHostError` behind a failed statement or checkout, if that is
 * why it failed: directly, or as the last connection error of a pool timeout.
 *
 * @internal
 */
export const noSuitableHost = (error: unknown): Option.Option<NoSuitableHostError> => {
  for (let cause: unknown = error, depth = 0; depth < 4 && typeof cause === "object" && cause !== null; depth++) {
    if (cause instanceof NoSuitableHostError) return Option.some(cause)
    cause = "lastConnectError" in cause && cause.lastConnectError !== undefined
      ? cause.lastConnectError
      : "cause" in cause
      ? cause.cause
      : undefined
  }
  return Option.none()
}
