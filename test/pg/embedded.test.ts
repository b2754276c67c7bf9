import { afterAll, describe, expect, it } from "@effect/vitest"
import { existsSync, readFileSync } from "node:fs"
import { chmod, cp, mkdir, mkdtemp, readdir, rm, writeFile } from "node:fs/promises"
import * as Os from "node:os"
import * as Path from "node:path"
import { installedBinaries, probe, startEmbedded } from "../utils/postgres.js"

// The embedded server's own failures. Each test's server (real or fake) is its own.
const scratch: Array<string> = []
afterAll(() => Promise.all(scratch.map((dir) => rm(dir, { recursive: true, force: true }))))

const tempDir = async (prefix: string, mode = 0o755) => {
  const dir = await mkdtemp(Path.join(Os.tmpdir(), prefix))
  await chmod(dir, mode)
  scratch.push(dir)
  return dir
}

/** A fake binaries package: `<dir>/package.json` and `<dir>/native/bin/{initdb,postgres}` from shell scripts. */
const fakePackage = async (scripts: { readonly initdb: string; readonly postgres: string }, mode = 0o755) => {
  const dir = await tempDir("lifeguard-fake-pg-")
  await mkdir(Path.join(dir, "native", "bin"), { recursive: true, mode: 0o755 })
  await writeFile(Path.join(dir, "package.json"), JSON.stringify({ version: `fake-${Path.basename(dir)}` }))
  const paths = { initdb: Path.join(dir, "native", "bin", "initdb"), postgres: Path.join(dir, "native", "bin", "postgres") }
  for (const name of ["initdb", "postgres"] as const) {
    await writeFile(paths[name], `#!/bin/sh\n${scripts[name]}\n`, { mode })
  }
  return paths
}

// Deadlines far longer than the test's own timeout: these failures must come from the process, at once.
const patient = { initialise: 600_000, start: 600_000, stop: 600_000 }

describe("the embedded server fails at once, saying why", () => {
  it("when a binary cannot be run (EACCES), instead of crashing on an unhandled 'error' event", async () => {
    const binaries = await fakePackage({ initdb: "exit 0", postgres: "exit 0" }, 0o644)
    const error = await startEmbedded({ binaries, cacheDir: await tempDir("lifeguard-cache-"), deadlines: patient })
      .then(() => undefined, (e: Error) => e)
    expect(error?.message).toMatch(/cannot run .*initdb/)
    expect(error?.message).toContain("EACCES")
    expect(error?.message).toContain("DATABASE_URL")
  })

  it("when the server exits before accepting connections", async () => {
    const binaries = await fakePackage({ initdb: "exit 0", postgres: `echo "FATAL:  no memory for you" >&2; exit 3` })
    const error = await startEmbedded({ binaries, deadlines: patient }).then(() => undefined, (e: Error) => e)
    expect(error?.message).toMatch(/failed to start: postgres exited with code 3/)
    expect(error?.message).toContain("FATAL:  no memory for you")
  })

  it("when initdb fails, with what it printed", async () => {
    const binaries = await fakePackage({
      initdb: `[ "$1" = --version ] && exit 0; echo "initdb: error: could not create directory" >&2; exit 1`,
      postgres: "exit 0"
    })
    const error = await startEmbedded({ binaries, deadlines: patient }).then(() => undefined, (e: Error) => e)
    expect(error?.message).toMatch(/failed to initialise its data directory: initdb exited with code 1/)
    expect(error?.message).toContain("could not create directory")
  })

  it("when initdb does not finish within its deadline, and the process is killed", async () => {
    const binaries = await fakePackage({ initdb: `[ "$1" = --version ] && exit 0; exec sleep 600`, postgres: "exit 0" })
    const error = await startEmbedded({ binaries, deadlines: { initialise: 300 } }).then(() => undefined, (e: Error) => e)
    expect(error?.message).toMatch(/initdb did not finish within 300 ms/)
  })
})

describe("the embedded server from any checkout", () => {
  it("runs binaries installed in a folder the server's user cannot enter (a checkout under mktemp -d)", async () => {
    const installed = await installedBinaries()
    const pkg = Path.resolve(Path.dirname(installed.initdb), "..", "..")
    const privateCheckout = await tempDir("lifeguard-private-", 0o700)
    const copy = Path.join(privateCheckout, "pkg")
    await mkdir(copy)
    await cp(Path.join(pkg, "package.json"), Path.join(copy, "package.json"))
    await cp(Path.join(pkg, "native"), Path.join(copy, "native"), { recursive: true, verbatimSymlinks: true })
    const cacheDir = await tempDir("lifeguard-cache-")
    const server = await startEmbedded({
      binaries: { initdb: Path.join(copy, "native", "bin", "initdb"), postgres: Path.join(copy, "native", "bin", "postgres") },
      cacheDir
    })
    try {
      expect(await probe(server.url, 5_000)).toBeUndefined()
      // As root the server runs as another user, from a readable copy; otherwise from the checkout.
      expect((await readdir(cacheDir)).length).toBe(process.getuid?.() === 0 ? 1 : 0)
    } finally {
      await server.stop()
    }
    expect(existsSync(server.dataDir)).toBe(false)
  })

  it("stop returns for a server that has already exited, and removes its folder", async () => {
    const server = await startEmbedded({ deadlines: patient })
    const pid = Number(readFileSync(Path.join(server.dataDir, "postmaster.pid"), "utf8").split("\n")[0])
    process.kill(pid, "SIGKILL")
    // Wait for the OS, not for the pool: the postmaster is gone once signalling it fails.
    for (let i = 0; i < 500 && alive(pid); i++) await new Promise((resolve) => setTimeout(resolve, 10))
    expect(alive(pid)).toBe(false)
    await server.stop()
    expect(existsSync(server.dataDir)).toBe(false)
  })
})

const alive = (pid: number) => {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}
