/**
 * The Go-built servers of `tools/` (Toxiproxy, the FerretDB launcher), as cached binaries.
 *
 * `scripts/go-tool.sh` builds a binary once and caches it outside the repository; CI builds
 * them before `npm test`, so here a build only happens on a developer's first run.
 */
import { execFile } from "node:child_process"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"

const script = Path.join(Path.dirname(fileURLToPath(import.meta.url)), "../../scripts/go-tool.sh")

/** A first build from the Go module proxy takes up to a few minutes on 2 cores. */
const buildTimeoutMs = 10 * 60_000

/** Resolves to the binary's path; rejects with the build's own words when it cannot. */
export const goTool = (name: string, timeoutMs = buildTimeoutMs): Promise<string> =>
  new Promise((resolve, reject) => {
    execFile("bash", [script, name], { timeout: timeoutMs, killSignal: "SIGKILL" }, (error, stdout, stderr) => {
      if (error === null) return resolve(stdout.trim())
      const why = error.killed ? `did not finish within ${timeoutMs / 1000} s` : stderr.trim() || error.message
      reject(new Error(`could not build the Go tool "${name}" (scripts/go-tool.sh ${name}): ${why}`))
    })
  })
