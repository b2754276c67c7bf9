/**
 * lifeguard/mongodb: the `mongodb` driver behind lifeguard leases.
 *
 * @since 0.1.0
 */

/**
 * The layers, leases, operations and errors.
 *
 * @since 0.1.0
 */
export * as MongoPool from "./MongoPool.js"

/**
 * The typed errors.
 *
 * @since 0.1.0
 */
export * as MongoError from "./MongoError.js"
