/// A live room as its owning worker sees it: the member connections a broadcast fans out to.
///
/// Thread confinement: created, read and changed only by the worker that owns the room's shard.
/// No lock, no atomic: this is the relay path.
///
/// Members are held unretained, in a plain buffer rather than an Array, so the fan-out loop
/// does no reference counting at all: not per recipient, and not on the member list either (an
/// Array stored in a class is retained around every loop over it).
/// Invariants that make it safe: a connection is always removed from its room (`leaveRoom`)
/// before the worker lets go of it (close, handoff), and the worker's connection table holds it
/// strongly until then; `members[0..<memberCount]` are initialized, the rest of the buffer is not.
final class LocalRoom {
    let record: RoomRecord
    /// Members in no particular order (removal swaps the last member in).
    @exclusivity(unchecked) private var members: UnsafeMutablePointer<Unmanaged<Connection>>?
    @exclusivity(unchecked) private(set) var memberCount = 0
    /// Members that are WebSocket clients: while there are any, a fan-out also makes the
    /// frame in WebSocket framing, once (`Worker.fanOut`).
    @exclusivity(unchecked) private(set) var webSocketMemberCount = 0
    private var capacity = 0
    /// Set when the room is deleted while members remain (soft delete).
    @exclusivity(unchecked) var isDeleted = false
    /// The room's life in the cluster, when there is one (`ClusterRoom`).
    var cluster: ClusterRoom?

    init(record: RoomRecord) {
        self.record = record
    }

    deinit {
        members?.deallocate()
    }

    var id: String { record.id }
    var generation: UInt64 { record.generation }
    var isEmpty: Bool { memberCount == 0 }

    func add(_ connection: Connection) {
        if memberCount == capacity { grow() }
        connection.memberIndex = Int32(memberCount)
        (members! + memberCount).initialize(to: .passUnretained(connection))
        memberCount += 1
        if connection.isWebSocket { webSocketMemberCount += 1 }
    }

    func remove(_ connection: Connection) {
        let index = Int(connection.memberIndex)
        assert(members![index].toOpaque() == Unmanaged.passUnretained(connection).toOpaque(), "memberIndex out of date")
        memberCount -= 1
        if connection.isWebSocket { webSocketMemberCount -= 1 }
        if index < memberCount {
            let last = members![memberCount]
            members![index] = last
            last._withUnsafeGuaranteedRef { $0.memberIndex = Int32(index) }
        }
        connection.memberIndex = -1
    }

    /// Calls `body` with every member except `excluded`, without retaining anything.
    @inline(__always)
    func forEachMember(except excluded: Connection? = nil, _ body: (Connection) -> Void) {
        guard let members else { return }
        let skip = excluded.map { Unmanaged.passUnretained($0).toOpaque() }
        for index in 0..<memberCount where members[index].toOpaque() != skip {
            members[index]._withUnsafeGuaranteedRef(body)
        }
    }

    private func grow() {
        let newCapacity = max(4, capacity * 2)
        let grown = UnsafeMutablePointer<Unmanaged<Connection>>.allocate(capacity: newCapacity)
        if let members {
            grown.moveInitialize(from: members, count: memberCount)
            members.deallocate()
        }
        members = grown
        capacity = newCapacity
    }
}
