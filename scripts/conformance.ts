/**
 * `npm run conformance -- --spec-dir DIR`: runs every CMAP JSON test in DIR
 * (default: $CMAP_SPEC_DIR, else ../shared/cmap-spec next to the repository)
 * against the pool, prints `PASS file` or `FAIL file: why` per file and then
 * `N passed, M failed`. Exits with 1 when anything failed.
 */
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as path from "node:path"
import { runFile, specDir, specFiles } from "../test/conformance/runner.js"

const usage = "usage: npm run conformance -- [--spec-dir DIR]"

const parseArgs = (args: ReadonlyArray<string>): Either.Either<string, string> => {
  let dir = specDir()
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!
    if (arg === "--spec-dir" && args[i + 1] !== undefined) {
      dir = path.resolve(args[++i]!)
    } else if (arg.startsWith("--spec-dir=")) {
      dir = path.resolve(arg.slice("--spec-dir=".length))
    } else {
      return Either.left(`unexpected argument ${JSON.stringify(arg)}\n${usage}`)
    }
  }
  return Either.right(dir)
}

const main = async (): Promise<number> => {
  const dir = parseArgs(process.argv.slice(2))
  if (Either.isLeft(dir)) {
    console.error(dir.left)
    return 2
  }
  const files = specFiles(dir.right)
  if (Either.isLeft(files)) {
    console.error(files.left.reason)
    return 1
  }
  let passed = 0, failed = 0
  for (const file of files.right) {
    const exit = await Effect.runPromiseExit(runFile(path.join(dir.right, file)))
    if (Exit.isSuccess(exit)) {
      passed++
      console.log(`PASS ${file}`)
    } else {
      failed++
      const failure = Cause.failureOption(exit.cause)
      console.log(`FAIL ${file}: ${failure._tag === "Some" ? failure.value.reason : Cause.pretty(exit.cause)}`)
    }
  }
  console.log(`${passed} passed, ${failed} failed`)
  return failed > 0 ? 1 : 0
}

process.exitCode = await main()
