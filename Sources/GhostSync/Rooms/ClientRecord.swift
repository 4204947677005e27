#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Synchronization

/// The cross-thread view of one connected client: what `ServerHandle` queries read.
/// The owning worker writes `room` on join/leave and publishes `queueLength` once per flush.
final class ClientRecord: Sendable {
    struct State: Sendable {
        var roomID: String?
        var metadata = TypedMetadata()
    }

    let id: UUID
    let address: SocketAddress
    /// Outgoing frames queued, as of the owner's last flush (relaxed: a monitoring figure).
    let queueLength = Atomic<Int>(0)
    /// The worker that holds the connection, for routing server-side commands to it (-1 once
    /// it has ended). Written only by the holder: `register` sets its own index, `handOff` the
    /// target's just before posting (releasing), `close` -1. So a worker that reads its own
    /// index here (acquiring) knows the connection is, or is about to be, in its table.
    let owner = Atomic<Int>(-1)
    /// Numbers server-side actions for this client in call order, so that the worker that
    /// holds it runs them in that order even when some were forwarded while it moved.
    let nextActionSequence = Atomic<UInt64>(0)
    /// The connection itself, dereferenced only by the worker named in `owner`, on its thread,
    /// after checking its own table (`Worker.heldConnection(for:)`). Unowned: the connection
    /// owns this record, and a worker only follows the reference while it holds the connection.
    nonisolated(unsafe) unowned(unsafe) var connection: Connection?
    let state: Locked<State>

    init(id: UUID, address: SocketAddress) {
        self.id = id
        self.address = address
        self.state = Locked(State())
    }

    var roomID: String? { state.withLock { $0.roomID } }

    func setRoomID(_ roomID: String?) {
        state.withLock { $0.roomID = roomID }
    }
}
