/**
 * The typed collection helper: the common calls as Effects on the current
 * lease (or a lease of their own), each passing the lease's session and
 * signal, decoding documents with an optional `Schema`.
 *
 * @internal
 */
import * as Effect from "effect/Effect"
import type * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import type { ClientSession, Document } from "mongodb"
import type { Collection, MongoPoolClient } from "../MongoPool.js"
import { MongoPool } from "../MongoPool.js"

const withLease = <O extends object>(options: O | undefined, lease: { readonly session: ClientSession; readonly signal: AbortSignal }) => ({
  ...options,
  session: lease.session,
  signal: lease.signal
})

/** @internal */
export const make = <A = Document, I = Document>(
  name: string,
  schema?: Schema.Schema<A, I>
): Collection<A> => {
  const decodeMany: (docs: ReadonlyArray<unknown>) => Effect.Effect<ReadonlyArray<A>, ParseResult.ParseError> =
    schema === undefined
      ? (docs) => Effect.succeed(docs as ReadonlyArray<A>)
      : Schema.decodeUnknown(Schema.Array(schema as Schema.Schema<A, I>))
  const decodeOne: (doc: unknown) => Effect.Effect<A, ParseResult.ParseError> = schema === undefined
    ? (doc) => Effect.succeed(doc as A)
    : Schema.decodeUnknown(schema)
  const encodeOne: (doc: A) => Effect.Effect<I, ParseResult.ParseError> = schema === undefined
    ? (doc) => Effect.succeed(doc as unknown as I)
    : Schema.encode(schema)
  const encodeMany: (docs: ReadonlyArray<A>) => Effect.Effect<ReadonlyArray<I>, ParseResult.ParseError> =
    schema === undefined
      ? (docs) => Effect.succeed(docs as unknown as ReadonlyArray<I>)
      : Schema.encode(Schema.Array(schema as Schema.Schema<A, I>))

  const ops = {
    find: `find ${name}`,
    findOne: `findOne ${name}`,
    insertOne: `insertOne ${name}`,
    insertMany: `insertMany ${name}`,
    updateOne: `updateOne ${name}`,
    updateMany: `updateMany ${name}`,
    deleteOne: `deleteOne ${name}`,
    deleteMany: `deleteMany ${name}`,
    aggregate: `aggregate ${name}`,
    countDocuments: `countDocuments ${name}`
  }
  const on = <B, E>(f: (client: MongoPoolClient) => Effect.Effect<B, E>) => Effect.flatMap(MongoPool, f)

  return {
    name,
    find: (filter = {}, options) =>
      on((mongo) =>
        Effect.flatMap(
          mongo.promise((db, lease) => db.collection(name).find(filter, withLease(options, lease)).toArray(), ops.find),
          decodeMany
        )
      ),
    findOne: (filter, options) =>
      on((mongo) =>
        Effect.flatMap(
          mongo.promise((db, lease) => db.collection(name).findOne(filter, withLease(options, lease)), ops.findOne),
          (doc) => doc === null ? Effect.succeedNone : Effect.asSome(decodeOne(doc))
        )
      ),
    insertOne: (doc, options) =>
      on((mongo) =>
        Effect.flatMap(encodeOne(doc), (encoded) =>
          mongo.promise(
            (db, lease) => db.collection(name).insertOne(encoded as Document, withLease(options, lease)),
            ops.insertOne
          ))
      ),
    insertMany: (docs, options) =>
      on((mongo) =>
        Effect.flatMap(encodeMany(docs), (encoded) =>
          mongo.promise(
            (db, lease) => db.collection(name).insertMany(encoded as unknown as Array<Document>, withLease(options, lease)),
            ops.insertMany
          ))
      ),
    updateOne: (filter, update, options) =>
      on((mongo) =>
        mongo.promise((db, lease) => db.collection(name).updateOne(filter, update, withLease(options, lease)), ops.updateOne)
      ),
    updateMany: (filter, update, options) =>
      on((mongo) =>
        mongo.promise((db, lease) => db.collection(name).updateMany(filter, update, withLease(options, lease)), ops.updateMany)
      ),
    deleteOne: (filter, options) =>
      on((mongo) => mongo.promise((db, lease) => db.collection(name).deleteOne(filter, withLease(options, lease)), ops.deleteOne)),
    deleteMany: (filter, options) =>
      on((mongo) =>
        mongo.promise((db, lease) => db.collection(name).deleteMany(filter, withLease(options, lease)), ops.deleteMany)
      ),
    aggregate: (pipeline, options) =>
      on((mongo) =>
        mongo.promise(
          (db, lease) => db.collection(name).aggregate(pipeline as Array<Document>, withLease(options, lease)).toArray(),
          ops.aggregate
        )
      ),
    countDocuments: (filter = {}, options) =>
      on((mongo) =>
        mongo.promise(
          (db, lease) => db.collection(name).countDocuments(filter, withLease(options, lease)),
          ops.countDocuments
        )
      )
  }
}
