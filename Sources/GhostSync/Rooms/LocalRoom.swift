/// A live room as its owning worker sees it: the member connections a broadcast fans out to.
///
/// Thread confinement: created, read and changed only by the worker that owns the room's shard.
/// No lock, no atomic: this is the relay path.
///
/// Members are held unretained, so the fan-out loop does no reference counting per recipient.
/// Invariant that makes it safe: a connection is always removed from its room (`leaveRoom`)
/// before the worker lets go of it (close, handoff), and the worker's connection table holds it
/// strongly until then.
final class LocalRoom {
    let record: RoomRecord
    /// Members in no particular order (removal swaps the last member in).
    @exclusivity(unchecked) private(set) var members: [Unmanaged<Connection>] = []
    /// Set when the room is deleted while members remain (soft delete).
    @exclusivity(unchecked) var isDeleted = false

    init(record: RoomRecord) {
        self.record = record
    }

    var id: String { record.id }
    var generation: UInt64 { record.generation }

    func add(_ connection: Connection) {
        connection.memberIndex = members.count
        members.append(Unmanaged.passUnretained(connection))
    }

    func remove(_ connection: Connection) {
        let index = connection.memberIndex
        assert(members[index].toOpaque() == Unmanaged.passUnretained(connection).toOpaque(), "memberIndex out of date")
        let last = members.removeLast()
        if index < members.count {
            members[index] = last
            last._withUnsafeGuaranteedRef { $0.memberIndex = index }
        }
        connection.memberIndex = -1
    }

    /// Calls `body` with every member except `excluded`, without retaining them.
    @inline(__always)
    func forEachMember(except excluded: Connection? = nil, _ body: (Connection) -> Void) {
        let skip = excluded.map { Unmanaged.passUnretained($0).toOpaque() }
        for member in members where member.toOpaque() != skip {
            member._withUnsafeGuaranteedRef(body)
        }
    }
}
