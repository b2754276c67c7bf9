import { describe, expect, it } from "@effect/vitest"
import { MongoPool } from "../../src/mongodb/index.js"

const driverError = (name: string, fields: Record<string, unknown> = {}) =>
  Object.assign(new Error(`${name} happened`), { name, ...fields })

const classify = (error: unknown) => MongoPool.operationFailed("p", "find c", error) as MongoPool.MongoOperationError

describe("driver errors", () => {
  it("lost sockets, cleared pools, failed selections and stepped-down primaries are retryable", () => {
    expect(classify(driverError("MongoNetworkError"))).toMatchObject({ kind: "network", retryable: true })
    expect(classify(driverError("MongoNetworkTimeoutError"))).toMatchObject({ kind: "network", retryable: true })
    expect(classify(driverError("MongoPoolClearedError"))).toMatchObject({ kind: "poolCleared", retryable: true })
    expect(classify(driverError("PoolClearedOnNetworkError"))).toMatchObject({ kind: "poolCleared", retryable: true })
    expect(classify(driverError("MongoServerSelectionError"))).toMatchObject({ kind: "serverSelection", retryable: true })
    expect(classify(driverError("MongoServerError", { code: 10107, codeName: "NotWritablePrimary" })))
      .toMatchObject({ kind: "notPrimary", retryable: true, code: 10107, codeName: "NotWritablePrimary" })
    expect(classify(driverError("MongoServerError", { code: 91 }))).toMatchObject({ kind: "notPrimary", retryable: true })
    // A write after the server's FIN reaches the caller as node's own EPIPE error.
    expect(classify(driverError("Error", { code: "EPIPE" }))).toMatchObject({ kind: "network", retryable: true })
    expect(classify(driverError("Error", { code: "ECONNRESET" }))).toMatchObject({ kind: "network", retryable: true })
    expect(classify(driverError("Error", { code: "ERR_INVALID_ARG_TYPE" }))).toMatchObject({ kind: "client", retryable: false })
    // A client being restarted (the monitor watchdog): out of reach for now.
    expect(classify(driverError("MongoTopologyClosedError"))).toMatchObject({ kind: "network", retryable: true })
    expect(classify(driverError("MongoNotConnectedError"))).toMatchObject({ kind: "network", retryable: true })
  })

  it("a retryable label makes any error retryable; a plain server error keeps its code and is not", () => {
    const labelled = classify(driverError("MongoServerError", { code: 112, errorLabels: ["TransientTransactionError"] }))
    expect(labelled).toMatchObject({ kind: "server", retryable: true, labels: ["TransientTransactionError"] })
    const plain = classify(driverError("MongoServerError", { code: 2, codeName: "BadValue" }))
    expect(plain).toMatchObject({ kind: "server", retryable: false, code: 2 })
    expect(plain.message).toBe(`pool "p": find c failed (code 2 BadValue): MongoServerError happened`)
    expect(classify(driverError("MongoInvalidArgumentError"))).toMatchObject({ kind: "client", retryable: false })
    expect(classify(driverError("MongoOperationTimeoutError"))).toMatchObject({ kind: "timeout", retryable: false })
  })

  it("a duplicate key is its own error, with the key", () => {
    const error = MongoPool.operationFailed("p", "insertOne c", driverError("MongoServerError", { code: 11000, keyValue: { email: "a" } }))
    expect(error._tag).toBe("MongoDuplicateKeyError")
    expect((error as MongoPool.MongoDuplicateKeyError).keyValue).toStrictEqual({ email: "a" })
  })
})
