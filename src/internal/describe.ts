/**
 * Errors as one line for log annotations and health reasons: a log line or a
 * JSON body must never carry a pretty-printed dump.
 *
 * @internal
 */

const firstLine = (text: string): string => text.split("\n", 1)[0]!

/** @internal */
export const describeError = (error: unknown): string => {
  if (error instanceof Error) {
    const tag = "_tag" in error && typeof error._tag === "string" ? error._tag : error.name
    return error.message === "" ? tag : `${tag}: ${firstLine(error.message)}`
  }
  if (typeof error === "object" && error !== null) {
    if ("_tag" in error) return String(error._tag)
    try {
      return JSON.stringify(error) ?? String(error)
    } catch {
      return String(error)
    }
  }
  return firstLine(String(error))
}
