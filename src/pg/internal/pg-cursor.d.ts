// pg-cursor ships no types; this is the part lifeguard uses.
declare module "pg-cursor" {
  import type { Submittable } from "pg"
  export default class Cursor<Row = any> implements Submittable {
    constructor(text: string, values?: Array<unknown>, config?: { readonly rowMode?: "array" })
    submit: Submittable["submit"]
    readonly state: "initialized" | "submitted" | "idle" | "busy" | "done" | "error"
    read(rows: number, callback: (error: Error | undefined, rows: Array<Row>) => void): void
    close(callback: (error?: Error) => void): void
  }
}
