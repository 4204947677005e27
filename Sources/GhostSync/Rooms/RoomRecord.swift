#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The cross-thread view of one room. A new record (with a new generation) is made each time a
/// room ID is created, so members of a deleted room never mix with a later room of the same ID.
final class RoomRecord: Sendable {
    struct State: Sendable {
        /// Members in join order (mirror of the owning worker's `LocalRoom`).
        var members: [ClientRecord] = []
        var metadata: [String: String] = [:]
        var typedMetadata = TypedMetadata()
    }

    let id: String
    let generation: UInt64
    /// The worker that owns the room.
    let shard: Int
    let state: Locked<State>

    init(id: String, generation: UInt64, shard: Int) {
        self.id = id
        self.generation = generation
        self.shard = shard
        self.state = Locked(State())
    }

    func addMember(_ client: ClientRecord) {
        state.withLock { $0.members.append(client) }
    }

    func removeMember(_ id: UUID) {
        state.withLock { state in
            if let index = state.members.firstIndex(where: { $0.id == id }) {
                state.members.remove(at: index)
            }
        }
    }

    var memberCount: Int { state.withLock { $0.members.count } }

    var memberIDs: [UUID] { state.withLock { $0.members.map(\.id) } }
}
