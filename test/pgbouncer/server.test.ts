/**
 * Smoke test of test/utils/pgbouncer.ts: PgBouncer starts in transaction mode in front of the shared
 * server, a lifeguard/pg pool runs statements through it, and it stops. Issue 9's behaviour is for later.
 */
import { SqlClient } from "@effect/sql"
import { afterAll, describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { PgPool } from "../../src/pg/index.js"
import { startPgBouncer } from "../utils/pgbouncer.js"
import { probe, sharedServer } from "../utils/postgres.js"

const server = await sharedServer()
const bouncer = await startPgBouncer(server.url)
afterAll(async () => {
  await bouncer.stop()
  await server.stop()
})

describe("PgBouncer in transaction mode", () => {
  it.live("serves a lifeguard/pg pool's statements and transactions", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const rows = yield* Effect.forEach([1, 2, 3, 4, 5, 6], (i) => sql<{ i: number }>`SELECT ${i}::int AS i`, {
        concurrency: "unbounded"
      })
      expect(rows.map(([row]) => row!.i)).toStrictEqual([1, 2, 3, 4, 5, 6])
      const [row] = yield* sql.withTransaction(sql<{ n: number }>`SELECT 41 + 1 AS n`)
      expect(row!.n).toBe(42)
    }).pipe(Effect.provide(PgPool.layer({ url: bouncer.url, name: "pgbouncer-smoke", maxSize: 3 }))))

  it("stops within its deadline and no longer answers", async () => {
    const other = await startPgBouncer(server.url)
    expect(await probe(other.url)).toBeUndefined()
    await other.stop()
    expect(await probe(other.url, 500)).toMatch(/ECONNREFUSED/)
  })
})
