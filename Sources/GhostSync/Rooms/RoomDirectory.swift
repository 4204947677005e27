import Synchronization

/// Every live room, by ID, readable and writable from any thread. One stripe per shard, so the
/// joins a worker completes for its own rooms take an uncontended lock. A room exists for joins
/// as soon as `create` returns. No lock here is ever held while a hook runs.
final class RoomDirectory: Sendable {
    private final class Stripe: Sendable {
        let rooms = Locked<[String: RoomRecord]>([:])
    }

    let shardMap: ShardMap
    private let stripes: [Stripe]
    private let generations = Atomic<UInt64>(0)

    init(shardMap: ShardMap) {
        self.shardMap = shardMap
        self.stripes = (0..<shardMap.workerCount).map { _ in Stripe() }
    }

    /// Creates the room; nil when a room with this ID exists.
    func create(_ roomID: String) -> RoomRecord? {
        let shard = shardMap.shard(of: roomID)
        return stripes[shard].rooms.withLock { rooms in
            if rooms[roomID] != nil { return nil }
            let generation = generations.wrappingAdd(1, ordering: .relaxed).newValue
            let record = RoomRecord(id: roomID, generation: generation, shard: shard)
            rooms[roomID] = record
            return record
        }
    }

    /// Removes the room; the removed record, or nil when there was none.
    func delete(_ roomID: String) -> RoomRecord? {
        stripes[shardMap.shard(of: roomID)].rooms.withLock { $0.removeValue(forKey: roomID) }
    }

    func record(_ roomID: String) -> RoomRecord? {
        stripes[shardMap.shard(of: roomID)].rooms.withLock { $0[roomID] }
    }

    var count: Int {
        stripes.reduce(0) { total, stripe in total + stripe.rooms.withLock { $0.count } }
    }

    var roomIDs: [String] {
        stripes.flatMap { stripe in stripe.rooms.withLock { Array($0.keys) } }.sorted()
    }
}
