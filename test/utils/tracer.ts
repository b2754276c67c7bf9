import { Option, Tracer } from "effect"

/** A span as the recording tracer saw it end. */
export interface RecordedSpan {
  readonly name: string
  /** The parent's span id (its name, for spans of this tracer). */
  readonly parent: string | undefined
  readonly start: bigint
  readonly end: bigint
  readonly attributes: Map<string, unknown>
}

/** A tracer that keeps every span it ends, in the order they end; a span's id is its name. */
export const recordingTracer = () => {
  const spans: Array<RecordedSpan> = []
  const tracer = Tracer.make({
    span: (name, parent, context, links, startTime, kind) => {
      const attributes = new Map<string, unknown>()
      const span: Tracer.Span = {
        _tag: "Span",
        name,
        spanId: name,
        traceId: "trace",
        parent,
        context,
        links,
        sampled: true,
        kind,
        status: { _tag: "Started", startTime },
        attributes,
        attribute: (key, value) => void attributes.set(key, value),
        event: () => {},
        addLinks: () => {},
        end: (endTime) =>
          void spans.push({
            name,
            parent: Option.getOrUndefined(Option.map(parent, (p) => p.spanId)),
            start: startTime,
            end: endTime,
            attributes
          })
      }
      return span
    },
    context: (f) => f()
  })
  return { tracer, spans }
}
