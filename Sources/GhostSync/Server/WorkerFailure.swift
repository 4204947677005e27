/// A worker whose event loop failed (its `epoll_wait` returned an error it cannot recover from).
///
/// What happens then: the worker closes every connection it held (their rooms' members see the
/// connection end; `onDisconnect` runs with `.connectionReset`), its mailbox is closed (a
/// connection that was on its way there is ended), `ServerHandler.onWorkerFailed` runs, and
/// the shard is marked failed: joins to its rooms get `Error("room unavailable: ID")` while
/// the other shards carry on. `ServerHandle.failedWorkers` lists it and the relay's `/healthz`
/// answers 503. Restart the process to recover the shard.
public struct WorkerFailure: Sendable, Equatable, CustomStringConvertible {
    /// The worker's index (also its shard number).
    public let worker: Int
    /// What failed, e.g. `epoll_wait: Bad file descriptor (errno 9)`.
    public let reason: String

    public var description: String { "worker \(worker) failed: \(reason)" }
}
