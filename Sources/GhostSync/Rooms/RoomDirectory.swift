import Synchronization

/// Every live room, by ID, readable and writable from any thread. One stripe per shard, so the
/// joins a worker completes for its own rooms take an uncontended lock. A room exists for joins
/// as soon as `create` returns. No lock here is ever held while a hook runs.
final class RoomDirectory: Sendable {
    let shardMap: ShardMap
    private let rooms: StripedDictionary<String, RoomRecord>
    private let generations = Atomic<UInt64>(0)

    init(shardMap: ShardMap) {
        self.shardMap = shardMap
        self.rooms = StripedDictionary(stripeCount: shardMap.workerCount)
    }

    /// Creates the room; nil when a room with this ID exists.
    func create(_ roomID: String, clusterRevision: UInt64 = 0) -> RoomRecord? {
        let shard = shardMap.shard(of: roomID)
        return rooms.withStripe(shard) { rooms in
            if rooms[roomID] != nil { return nil }
            let generation = generations.wrappingAdd(1, ordering: .relaxed).newValue
            let record = RoomRecord(id: roomID, generation: generation, shard: shard, clusterRevision: clusterRevision)
            rooms[roomID] = record
            return record
        }
    }

    /// Removes the room; the removed record, or nil when there was none.
    func delete(_ roomID: String) -> RoomRecord? {
        rooms.withStripe(shardMap.shard(of: roomID)) { $0.removeValue(forKey: roomID) }
    }

    /// Removes `record` if it is still the room under its ID; false when it was not.
    func delete(_ record: RoomRecord) -> Bool {
        rooms.withStripe(record.shard) { rooms in
            guard rooms[record.id] === record else { return false }
            rooms[record.id] = nil
            return true
        }
    }

    func record(_ roomID: String) -> RoomRecord? {
        rooms.withStripe(shardMap.shard(of: roomID)) { $0[roomID] }
    }

    var count: Int { rooms.count }

    var roomIDs: [String] { rooms.keys.sorted() }

    var allRecords: [RoomRecord] { rooms.values }
}
