/**
 * A real primary and a streaming standby for failover tests, made from the machine's PostgreSQL
 * binaries (`initdb`, `pg_ctl`, `pg_basebackup`): data directories in a temporary folder the
 * postgres user owns, TCP on free 127.0.0.1 ports only, servers run as the postgres user when we
 * are root. Every start, stop and promote has a deadline and says why when it fails.
 */
import { Effect } from "effect"
import type { Scope } from "effect"
import { existsSync, readdirSync } from "node:fs"
import { appendFile, readFile, rm } from "node:fs/promises"
import * as Path from "node:path"
import { adminQuery, freePort, probe } from "./postgres.js"
import { runTool, serverTempDir, waitUntil } from "./serverProcess.js"

export interface ReplicaNode {
  readonly name: "primary" | "standby"
  readonly port: number
  readonly url: string
  readonly dataDir: string
  /** `pg_ctl stop`: "fast" disconnects clients (57P01) and shuts down cleanly; "immediate" is a crash. */
  readonly stop: (mode?: "fast" | "immediate") => Promise<void>
  /** `pg_ctl promote`, resolving once the server accepts writes. */
  readonly promote: () => Promise<void>
}

export interface ReplicaSet {
  readonly primary: ReplicaNode
  readonly standby: ReplicaNode
  /** Stops whatever still runs and removes the data directories. */
  readonly stop: () => Promise<void>
}

const stepTimeoutMs = 30_000
const standbyName = "standby1"

/** The directory holding initdb, pg_ctl and pg_basebackup: the machine's PostgreSQL, newest first. */
const binaries = (): string => {
  const root = "/usr/lib/postgresql"
  const versions = existsSync(root)
    ? readdirSync(root).filter((v) => existsSync(Path.join(root, v, "bin", "pg_basebackup"))).sort((a, b) => Number(b) - Number(a))
    : []
  if (versions.length === 0) {
    throw new Error(
      `no PostgreSQL server binaries with pg_basebackup under ${root} (apt-get install postgresql): ` +
        "the failover tests need initdb, pg_ctl and pg_basebackup to make a primary and a standby"
    )
  }
  return Path.join(root, versions[0]!, "bin")
}

const logTail = async (file: string) => {
  try {
    return (await readFile(file, "utf8")).slice(-3_000)
  } catch {
    return "(no server log)"
  }
}

/**
 * Starts a primary and a standby streaming from it. With `synchronous`, the primary's commits wait
 * until the standby has flushed them (`synchronous_standby_names`), so an acknowledged write
 * survives a failover.
 */
export const startReplicaSet = async (options: { readonly synchronous: boolean }): Promise<ReplicaSet> => {
  const bin = binaries()
  const tool = (name: string) => Path.join(bin, name)
  const root = await serverTempDir("lifeguard-replication-")
  const running = new Set<ReplicaNode>()

  const node = (name: "primary" | "standby", port: number): ReplicaNode => {
    const dataDir = Path.join(root, name)
    const log = Path.join(root, `${name}.log`)
    const why = async (step: string, error: unknown) =>
      new Error(
        `${name} PostgreSQL on 127.0.0.1:${port} (data ${dataDir}) failed to ${step}: ${(error as Error).message}` +
          `\n--- server log ---\n${await logTail(log)}`
      )
    const self: ReplicaNode = {
      name,
      port,
      url: `postgres://postgres@127.0.0.1:${port}/postgres`,
      dataDir,
      stop: async (mode = "fast") => {
        if (!running.has(self)) return
        try {
          await runTool(tool("pg_ctl"), ["-D", dataDir, "-m", mode, "-w", "-t", "20", "stop"], stepTimeoutMs)
        } catch (error) {
          throw await why(`stop (${mode})`, error)
        }
        running.delete(self)
      },
      promote: async () => {
        try {
          // -w: returns once the server has left recovery and takes writes.
          await runTool(tool("pg_ctl"), ["-D", dataDir, "-w", "-t", "20", "promote"], stepTimeoutMs)
        } catch (error) {
          throw await why("promote", error)
        }
      }
    }
    return self
  }

  const start = async (target: ReplicaNode) => {
    const log = Path.join(root, `${target.name}.log`)
    try {
      await runTool(tool("pg_ctl"), ["-D", target.dataDir, "-l", log, "-w", "-t", "20", "start"], stepTimeoutMs)
      running.add(target)
      await waitUntil(() => probe(target.url), stepTimeoutMs, `${target.name} on 127.0.0.1:${target.port}`)
    } catch (error) {
      throw new Error(`${target.name} PostgreSQL on 127.0.0.1:${target.port} failed to start: ${(error as Error).message}` +
        `\n--- server log ---\n${await logTail(log)}`)
    }
  }

  const stopAll = async () => {
    for (const target of [...running]) await target.stop("immediate").catch(() => {})
    await rm(root, { recursive: true, force: true })
  }

  try {
    const primary = node("primary", await freePort())
    const standby = node("standby", await freePort())
    await runTool(
      tool("initdb"),
      ["-D", primary.dataDir, "-U", "postgres", "--auth=trust", "--encoding=UTF8", "--no-sync", "--no-instructions"],
      stepTimeoutMs
    ).catch((error) => {
      throw new Error(`initdb of the primary failed: ${(error as Error).message}`)
    })
    await appendFile(
      Path.join(primary.dataDir, "postgresql.conf"),
      [
        "",
        `port = ${primary.port}`,
        "listen_addresses = '127.0.0.1'",
        // TCP only: instances never fight over a socket directory.
        "unix_socket_directories = ''",
        "max_connections = 100",
        "shared_buffers = 16MB",
        "wal_level = replica",
        "max_wal_senders = 5",
        "hot_standby = on",
        // Durability against a machine crash is not what these tests are about; clean stops flush anyway.
        "fsync = off",
        "synchronous_commit = on",
        `synchronous_standby_names = '${options.synchronous ? standbyName : ""}'`,
        ""
      ].join("\n")
    )
    await start(primary)
    await runTool(
      tool("pg_basebackup"),
      ["-h", "127.0.0.1", "-p", String(primary.port), "-U", "postgres", "-D", standby.dataDir, "-R", "-X", "stream", "-c", "fast", "--no-sync"],
      stepTimeoutMs
    ).catch((error) => {
      throw new Error(`pg_basebackup of the standby from the primary failed: ${(error as Error).message}`)
    })
    await appendFile(
      Path.join(standby.dataDir, "postgresql.conf"),
      // Once promoted it has no standby of its own: it must not wait for one.
      `\nport = ${standby.port}\nsynchronous_standby_names = ''\n`
    )
    await appendFile(
      Path.join(standby.dataDir, "postgresql.auto.conf"),
      `\nprimary_conninfo = 'host=127.0.0.1 port=${primary.port} user=postgres application_name=${standbyName}'\n`
    )
    await start(standby)
    await waitUntil(
      async () => {
        const rows = await adminQuery<{ state: string; sync_state: string }>(
          primary.url,
          "SELECT state, sync_state FROM pg_stat_replication WHERE application_name = $1",
          [standbyName]
        )
        const row = rows[0]
        if (row === undefined) return "the standby is not connected"
        if (row.state !== "streaming") return `replication state ${row.state}`
        if (options.synchronous && row.sync_state !== "sync") return `sync_state ${row.sync_state}`
        return undefined
      },
      stepTimeoutMs,
      `the standby on 127.0.0.1:${standby.port} streaming from the primary on 127.0.0.1:${primary.port}`
    )
    return { primary, standby, stop: stopAll }
  } catch (error) {
    await stopAll()
    throw error
  }
}

/** A primary and standby as a scoped resource, stopped and removed with the scope. */
export const replicaSetScoped = (options: { readonly synchronous: boolean }): Effect.Effect<ReplicaSet, never, Scope.Scope> =>
  Effect.acquireRelease(Effect.promise(() => startReplicaSet(options)), (set) => Effect.promise(set.stop))
