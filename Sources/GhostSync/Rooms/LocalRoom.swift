/// A live room as its owning worker sees it: the member connections a broadcast fans out to.
///
/// Thread confinement: created, read and changed only by the worker that owns the room's shard.
/// No lock, no atomic: this is the relay path.
final class LocalRoom {
    let record: RoomRecord
    /// Members in no particular order (removal swaps the last member in).
    private(set) var members: [Connection] = []
    /// Set when the room is deleted while members remain (soft delete).
    var isDeleted = false

    init(record: RoomRecord) {
        self.record = record
    }

    var id: String { record.id }
    var generation: UInt64 { record.generation }

    func add(_ connection: Connection) {
        connection.memberIndex = members.count
        members.append(connection)
    }

    func remove(_ connection: Connection) {
        let index = connection.memberIndex
        assert(members[index] === connection, "memberIndex out of date")
        let last = members.removeLast()
        if index < members.count {
            members[index] = last
            last.memberIndex = index
        }
        connection.memberIndex = -1
    }
}
