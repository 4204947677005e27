/// What one thread asks a worker to do, through its `Mailbox`.
package enum WorkerCommand: Sendable {
    /// Take over a connection moved here from another worker (cross-shard handoff).
    case adopt(Handoff)
    /// A room this worker owns was deleted: mark its live instance deleted (soft delete).
    case roomDeleted(roomID: String, generation: UInt64)
    /// Close everything and leave the loop.
    case stop
    /// A broadcast from the server to a room this worker owns (`ServerHandle.broadcast`).
    case serverBroadcast(roomID: String, generation: UInt64, data: [UInt8])
    /// Something for one client, to the worker that holds it (forwarded if it has moved).
    case toClient(ClientCommand)
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

/// What the server does to one client from outside its worker.
package enum ClientAction: Sendable {
    /// A Broadcast frame from the server (sender `ServerHandle.serverID`).
    case send([UInt8])
    /// Close it (`DisconnectReason.kicked`), after an Error frame with the reason.
    case disconnect(reason: String)
}

/// A `ClientAction` and the client it is for.
package struct ClientCommand: Sendable {
    let record: ClientRecord
    /// Position in the client's actions (`ClientRecord.nextActionSequence`).
    let sequence: UInt64
    let action: ClientAction
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
