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
        /// Members on other relays of the cluster, as the owning worker last heard (empty
        /// without a cluster, and while this node has no member of the room: docs/cluster.md).
        var remoteMembers: [UUID] = []
        var metadata: [String: String] = [:]
        var typedMetadata = TypedMetadata()
    }

    let id: String
    let generation: UInt64
    /// In a cluster with the room registry: the room's revision in the registry, the same on
    /// every relay for one incarnation of the room; 0 otherwise.
    let clusterRevision: UInt64
    /// The worker that owns the room.
    let shard: Int
    let state: Locked<State>

    init(id: String, generation: UInt64, shard: Int, clusterRevision: UInt64 = 0) {
        self.id = id
        self.generation = generation
        self.clusterRevision = clusterRevision
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

    /// Replaces the cluster's view of the room's members on other relays.
    func setRemoteMembers(_ ids: [UUID]) {
        state.withLock { $0.remoteMembers = ids }
    }

    /// Members on this relay.
    var localMemberCount: Int { state.withLock { $0.members.count } }

    /// Members on this relay and, in a cluster, on the others (as far as this relay has heard:
    /// what `maxClientsPerRoom` is checked against).
    var memberCount: Int { state.withLock { $0.members.count + $0.remoteMembers.count } }

    var memberIDs: [UUID] { state.withLock { $0.members.map(\.id) + $0.remoteMembers } }
}
