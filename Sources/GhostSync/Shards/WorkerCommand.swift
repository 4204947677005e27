/// What one thread asks a worker to do, through its `Mailbox`.
package enum WorkerCommand: Sendable {
    /// Take over a connection moved here from another worker (cross-shard handoff).
    case adopt(Handoff)
    /// A room this worker owns was deleted: mark its live instance deleted (soft delete).
    case roomDeleted(roomID: String, generation: UInt64)
    /// Close everything and leave the loop.
    case stop
    /// Tests only: make the worker's event loop fail for real (its epoll descriptor is replaced
    /// by /dev/null, so the next `epoll_wait` returns EINVAL).
    case failForTesting

    /// Releases what a command holds when it will never be run (a mailbox torn down after its
    /// worker stopped). A connection in transit is ended like any other: its one `onDisconnect`
    /// and its counts released (`ServerCore.endStranded`).
    package func discard() {
        if case .adopt(let handoff) = self {
            handoff.core.endStranded(handoff.connection)
        }
    }
}

/// A connection in transit between workers.
///
/// Invariant (why `@unchecked Sendable` is sound): the sending worker has removed the connection
/// from its epoll, its tables, its timer wheel and its room, and copied every queued outgoing
/// byte into a private buffer, before posting; after posting it keeps no reference. So exactly
/// one thread touches the connection at any time, and the mailbox's release/acquire ordering
/// hands its state over whole.
package struct Handoff: @unchecked Sendable {
    let connection: Connection
    /// For ending the connection if the target worker has stopped (`WorkerCommand.discard`).
    let core: ServerCore
}
