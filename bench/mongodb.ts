/**
 * Suite `mongodb`: a `ping` through 10 driver connections to the same
 * MongoDB-compatible server with 100 concurrent workers: the bare `mongodb`
 * driver (`maxPoolSize: 10`) and lifeguard's `MongoPool` (`maxSize: 10`, one
 * lease per `ping`, with the lease's session and signal passed to the
 * driver). For reference: the driver with a session and a signal per `ping`
 * (`mongodb-driver-session`), and that driven from Effect fibers without a
 * pool (`effect-driver`). Reports throughput and the client's CPU per
 * operation (`process.cpuUsage`; the server runs in its own process).
 *
 * The server is `MONGODB_URL`, else a FerretDB the suite starts (tools/ferretdb).
 */
import * as Effect from "effect/Effect"
import { MongoClient } from "mongodb"
import { sharedServer } from "../test/utils/ferretdb.js"
import type { Contender, EffectContender, PromiseContender, Result, Suite } from "./measure.js"
import { interleaved, median, range, runWindow, withRatios } from "./measure.js"

const configs = [{ workers: 100, maxSize: 10 }]
const ping = { ping: 1 }

interface Sample {
  readonly opsPerSec: number
  readonly cpuUsPerOp: number
}

/**
 * The bare driver; with `sessions`, each `ping` also gets an explicit session
 * and an abort signal, as a lifeguard lease passes them: what the driver
 * itself charges for those.
 */
const driver = (url: string, sessions: boolean): PromiseContender => ({
  kind: "promise",
  name: sessions ? "mongodb-driver-session" : "mongodb-driver",
  setup: async (maxPoolSize) => {
    const client = new MongoClient(url, { maxPoolSize })
    await client.connect()
    const admin = client.db("admin")
    await Promise.all(range(maxPoolSize * 2).map(() => admin.command(ping)))
    const withSession = async () => {
      const session = client.startSession()
      try {
        return await admin.command(ping, { session, signal: new AbortController().signal })
      } finally {
        await session.endSession()
      }
    }
    return {
      acquire: sessions ? withSession : () => admin.command(ping),
      release: () => {},
      close: () => client.close()
    }
  }
})

/**
 * The driver with a session and signal per `ping`, driven from 100 Effect fibers through
 * `Effect.tryPromise` with no pool of lifeguard's: what Effect's runtime itself costs here.
 */
const effectDriver = (url: string): EffectContender => ({
  kind: "effect",
  name: "effect-driver",
  setup: (maxPoolSize) =>
    Effect.gen(function*() {
      const client = yield* Effect.acquireRelease(
        Effect.promise(async () => {
          const client = new MongoClient(url, { maxPoolSize })
          await client.connect()
          return client
        }),
        (client) => Effect.promise(() => client.close())
      )
      const admin = client.db("admin")
      const command = Effect.tryPromise({
        try: (signal) => {
          const session = client.startSession()
          return admin.command(ping, { session, signal }).finally(() => session.endSession())
        },
        catch: (error) => error
      })
      yield* Effect.forEach(range(maxPoolSize * 2), () => command, { concurrency: "unbounded", discard: true })
      return (work) => Effect.zipRight(command, work)
    })
})

/** Loaded when the suite runs, so that a broken `lifeguard/mongodb` fails this suite alone. */
const lifeguard = async (url: string): Promise<EffectContender> => {
  const { MongoPool } = await import("lifeguard/mongodb").catch((error: unknown) => {
    throw new Error(`lifeguard/mongodb (dist/mongodb/index.js, built by npm run build) cannot be loaded: ${String(error)}`)
  })
  return {
    kind: "effect",
    name: "lifeguard",
    setup: (maxSize) =>
      Effect.gen(function*() {
        const mongo = yield* MongoPool.make({ url, database: "admin", maxSize })
        const command = mongo.promise((db, { session, signal }) => db.command(ping, { session, signal }))
        yield* Effect.forEach(range(maxSize * 2), () => command, { concurrency: "unbounded", discard: true })
        return (work) => Effect.zipRight(command, work)
      })
  }
}

export const mongodb: Suite = {
  name: "mongodb",
  reference: "mongodb-driver",
  run: async ({ quick, reps, log }) => {
    const server = await sharedServer()
    log(`mongodb: server ${server.url.replace(/:[^:@/]*@/, ":***@")}${server.started ? " (FerretDB started here)" : ""}`)
    try {
      const contenders: ReadonlyArray<Contender> = [
        await lifeguard(server.url),
        driver(server.url, false),
        driver(server.url, true),
        effectDriver(server.url)
      ]
      const windowMs = quick ? 300 : 1500
      const warmUpMs = quick ? 300 : 1500
      const warmUpWindows = quick ? 1 : 3
      const items = configs.flatMap((config) => contenders.map((contender) => ({ config, contender })))
      const samples = await interleaved(reps, items, async ({ config, contender }, warmUp): Promise<Sample> => {
        // The JIT needs a few windows before either client settles (measured: 3 windows of 1.5 s for lifeguard).
        for (let i = 1; warmUp && i < warmUpWindows; i++) await runWindow(contender, { ...config, windowMs: warmUpMs })
        const t = await runWindow(contender, { ...config, windowMs: warmUp ? warmUpMs : windowMs })
        const sample = { opsPerSec: t.cycles / (t.elapsedMs / 1000), cpuUsPerOp: (t.cpuMs * 1000) / t.cycles }
        if (!warmUp) {
          log(`mongodb workers${config.workers}-conns${config.maxSize} ${contender.name}: ` +
            `${Math.round(sample.opsPerSec)} ops/s, ${sample.cpuUsPerOp.toFixed(1)} µs CPU/op`)
        }
        return sample
      })
      const results: Array<Result> = items.map(({ config, contender }, i) => ({
        suite: "mongodb",
        config: `workers${config.workers}-conns${config.maxSize}`,
        contender: contender.name,
        opsPerSec: median(samples[i]!.map((s) => s.opsPerSec)),
        cpuUsPerOp: median(samples[i]!.map((s) => s.cpuUsPerOp)),
        samples: samples[i]!.map((s) => s.opsPerSec)
      }))
      return withRatios(results, "mongodb-driver", (r) => r.opsPerSec ?? undefined)
    } finally {
      await server.stop()
    }
  }
}
