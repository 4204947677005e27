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
