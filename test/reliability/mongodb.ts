/**
 * The reliability harness's MongoDB `Adapter`: a lifeguard/mongodb pool (one `MongoClient`, the
 * driver keeps the sockets) reaching the server through the proxy.
 *
 * Writes are inserts of a client-generated `_id`: the unique `_id` index makes a write sent twice a
 * `MongoDuplicateKeyError` in the load's errors, never a second document. FerretDB has no
 * server-side sleep, so `slow` holds its lease across a wait between two round trips. Server-side
 * connections are not readable on FerretDB 1.24: `connections` counts the driver's sockets that
 * are open by its own CMAP events (created minus closed), which is what a leak would leave.
 */
import { createHash } from "node:crypto"
import { Effect } from "effect"
import { type ClientSession, MongoClient } from "mongodb"
import { MongoPool } from "../../src/mongodb/index.js"
import type { Adapter, Subject } from "./harness.js"

const writes = "lifeguard_reliability"
const rows = "lifeguard_reliability_rows"
/** The most rows `big` and `stream` read; `prepare` stores them once. */
export const maxRows = 2_000

const md5 = (text: string) => createHash("md5").update(text).digest("hex")

const checkRows = (docs: ReadonlyArray<{ readonly _id: unknown; readonly h: unknown }>, expected: number) => {
  if (docs.length !== expected) throw new Error(`expected ${expected} documents, got ${docs.length}`)
  docs.forEach((doc, index) => {
    if (doc._id !== index + 1 || doc.h !== md5(String(index + 1))) throw new Error(`document ${index + 1} arrived corrupted`)
  })
  return docs.length
}

const direct = async <A>(url: string, f: (client: MongoClient) => Promise<A>): Promise<A> => {
  const client = new MongoClient(url, { serverSelectionTimeoutMS: 5_000 })
  try {
    return await f(client)
  } finally {
    await client.close().catch(() => {})
  }
}

/** Open driver sockets per pool name, from the driver's CMAP events (those carry `address`). */
const openSockets = new Map<string, Set<number>>()

/** The database every pool of `mongoAdapter(database)` uses. */
export const mongoAdapter = (database: string, driver: MongoPool.Options["driver"] = {}): Adapter => ({
  name: "mongodb",
  prepare: (url) =>
    direct(url, async (client) => {
      const db = client.db(database)
      const existing = await db.collection(rows).countDocuments()
      if (existing === maxRows) return
      await db.collection(rows).deleteMany({})
      await db.collection(rows).insertMany(
        Array.from({ length: maxRows }, (_, i) => ({ _id: i + 1, h: md5(String(i + 1)) }) as never)
      )
    }),
  make: (url, target, settings, onEvent) =>
    Effect.gen(function*() {
      const through = new URL(url)
      through.hostname = target.host
      through.port = String(target.port)
      through.pathname = `/${database}`
      const sockets = new Set<number>()
      openSockets.set(settings.name, sockets)
      const mongo = yield* MongoPool.make({
        ...settings,
        url: through.toString(),
        driver: { appName: settings.name, ...driver },
        onEvent: (event) => {
          if ("address" in event) {
            if (event._tag === "ConnectionCreated") sockets.add(event.connectionId)
            else if (event._tag === "ConnectionClosed") sockets.delete(event.connectionId)
          }
          onEvent(event)
        }
      }).pipe(Effect.orDie)
      const collection = mongo.db.collection<{ _id: string; run: string }>(writes)
      const find = (n: number, options: { readonly session: ClientSession; readonly signal: AbortSignal }) =>
        mongo.db.collection<{ _id: number; h: string }>(rows).find({ _id: { $lte: n } }, { ...options, batchSize: 100 }).sort({ _id: 1 })
      const ping = mongo.promise((db, { session, signal }) => db.command({ ping: 1 }, { session, signal }), "ping")
      return {
        read: Effect.asVoid(ping),
        write: (id) =>
          Effect.asVoid(mongo.promise((_, { session }) => collection.insertOne({ _id: id, run: settings.name }, { session }), "insertOne")),
        bad: Effect.asVoid(mongo.promise((db, { session, signal }) => db.command({ lifeguardNoSuchCommand: 1 }, { session, signal }), "bad")),
        slow: (ms) => mongo.withLease(Effect.zipRight(Effect.zipRight(ping, Effect.sleep(ms)), ping)).pipe(Effect.asVoid),
        big: (n) =>
          Effect.map(
            mongo.promise((_, { session, signal }) => find(n, { session, signal }).toArray(), "find"),
            (docs) => checkRows(docs, n)
          ),
        stream: (n) =>
          Effect.map(
            mongo.promise(async (_, { session, signal }) => {
              const docs: Array<{ _id: number; h: string }> = []
              for await (const doc of find(n, { session, signal })) docs.push(doc)
              return docs
            }, "find (cursor)"),
            (docs) => checkRows(docs, n)
          ),
        roundTrip: (granted) =>
          mongo.pool.use((lease) =>
            Effect.zipRight(
              Effect.sync(granted),
              Effect.tryPromise({ try: () => lease.db.command({ ping: 1 }, { session: lease.session }), catch: (cause) => cause })
            )
          ).pipe(Effect.asVoid),
        stats: mongo.pool.stats
      } satisfies Subject
    }),
  stored: (url, run) =>
    direct(url, async (client) => {
      const docs = await client.db(database).collection(writes)
        .aggregate<{ _id: string; n: number }>([{ $match: { run } }, { $group: { _id: "$_id", n: { $sum: 1 } } }])
        .toArray()
      return new Map(docs.map((doc) => [doc._id, doc.n]))
    }),
  connections: (_url, name) => Promise.resolve(openSockets.get(name)?.size ?? 0),
  classify: (error) => {
    if (typeof error !== "object" || error === null || !("_tag" in error)) return undefined
    const tagged = error as { readonly _tag: string; readonly kind?: string }
    if (tagged._tag === "MongoOperationError") return `MongoOperationError(${tagged.kind})`
    // The pool's own errors arrive as themselves (no wrapper, unlike lifeguard/pg).
    return tagged._tag
  }
})
