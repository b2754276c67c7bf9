import { describe, expect, it } from "@effect/vitest"
import { isConnectionGone, isServerGoingAway } from "../../src/pg/internal/errors.js"

const pgError = (code: string, message = "error") => Object.assign(new Error(message), { code })

describe("which errors mean the connection is gone", () => {
  it("SQLSTATE class 08, class 57P and the idle-in-transaction timeout", () => {
    for (const code of ["08000", "08003", "08006", "08P01", "57P01", "57P02", "57P03", "57P05", "25P03"]) {
      expect(isConnectionGone(pgError(code))).toBe(true)
    }
  })

  it("socket errors and pg's own messages", () => {
    for (const code of ["ECONNRESET", "EPIPE", "ECONNREFUSED", "ETIMEDOUT"]) {
      expect(isConnectionGone(pgError(code))).toBe(true)
    }
    expect(isConnectionGone(new Error("Connection terminated unexpectedly"))).toBe(true)
    expect(isConnectionGone(new Error("Client has encountered a connection error and is not queryable"))).toBe(true)
  })

  it("statement errors leave the connection usable", () => {
    for (const code of ["42P01", "23505", "57014", "40001", "22012", "25P02"]) {
      expect(isConnectionGone(pgError(code))).toBe(false)
    }
    expect(isConnectionGone("not an error")).toBe(false)
  })

  it("only an admin or crash shutdown means the whole server is going away", () => {
    expect(isServerGoingAway(pgError("57P01"))).toBe(true)
    expect(isServerGoingAway(pgError("57P02"))).toBe(true)
    expect(isServerGoingAway(pgError("57P03"))).toBe(false)
    expect(isServerGoingAway(pgError("ECONNRESET"))).toBe(false)
  })
})
