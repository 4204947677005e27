#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// What one relay tells the others about a room (or about itself), as the payload of a NATS
/// message. Binary, little-endian, and small: it rides on every relayed broadcast.
///
/// ```
/// op: UInt8 | incarnation: UInt64 | name length: UInt8 | node name (UTF-8) | body
/// ```
///
/// | op | body |
/// | --- | --- |
/// | broadcast | a ServerWire `broadcast` payload (tag, sender ID, data), relayed as it is |
/// | joined, left | the member's client ID (16 bytes) |
/// | syncRequest | room ID length (UInt16), room ID, flags (UInt8: 1 = the sender may have missed announcements, announce the differences), count (UInt32), the sender's members' client IDs; sent with a reply subject |
/// | syncReply | the same, for the replier's members |
/// | heartbeat | member count (UInt32) across the node |
/// | leaving | none: the node is shutting down; its members leave everywhere |
/// | membersQuery | count (UInt32), flags (UInt8: 1 = every room), then that many room IDs (UInt16 length, bytes); sent with a reply subject |
/// | membersReply | count (UInt32) of rooms, then per room: room ID, member count (UInt32), client IDs |
///
/// The incarnation is random per process start, so a node restarted under the same name is
/// told apart from its previous life (whose members are gone).
package struct ClusterEnvelope: Equatable, Sendable {
    package enum Operation: UInt8, Sendable {
        case broadcast = 1
        case joined = 2
        case left = 3
        case syncRequest = 4
        case syncReply = 5
        case heartbeat = 6
        case leaving = 7
        case membersQuery = 8
        case membersReply = 9
    }

    package var operation: Operation
    package var node: ClusterNodeID
    /// The bytes after the header (borrowed from the message being parsed).
    package var bodyOffset: Int

    /// Header size for `node`.
    package static func headerSize(node: ClusterNodeID) -> Int { 1 + 8 + 1 + node.name.utf8.count }

    /// Appends the header.
    package static func writeHeader(_ operation: Operation, node: ClusterNodeID, into bytes: inout [UInt8]) {
        bytes.append(operation.rawValue)
        withUnsafeBytes(of: node.incarnation.littleEndian) { bytes.append(contentsOf: $0) }
        bytes.append(UInt8(node.name.utf8.count))
        bytes.append(contentsOf: node.name.utf8)
    }

    /// Reads the header of `payload`; nil when it is not an envelope this version understands.
    package init?(parsing payload: UnsafeRawBufferPointer) {
        guard payload.count >= 10, let operation = Operation(rawValue: payload[0]) else { return nil }
        let incarnation = UInt64(littleEndian: payload.loadUnaligned(fromByteOffset: 1, as: UInt64.self))
        let nameLength = Int(payload[9])
        guard payload.count >= 10 + nameLength,
              let name = String(validating: UnsafeRawBufferPointer(rebasing: payload[10..<(10 + nameLength)]), as: UTF8.self)
        else { return nil }
        self.operation = operation
        self.node = ClusterNodeID(name: name, incarnation: incarnation)
        self.bodyOffset = 10 + nameLength
    }

    // MARK: Bodies

    package static func writeClientID(_ id: UUID, into bytes: inout [UInt8]) {
        withUnsafeBytes(of: id.uuid) { bytes.append(contentsOf: $0) }
    }

    package static func clientID(in body: UnsafeRawBufferPointer, at offset: Int = 0) -> UUID? {
        guard body.count >= offset + 16 else { return nil }
        var uuid: uuid_t = (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        withUnsafeMutableBytes(of: &uuid) { $0.copyMemory(from: UnsafeRawBufferPointer(rebasing: body[offset..<(offset + 16)])) }
        return UUID(uuid: uuid)
    }

    package static func writeRoomID(_ roomID: String, into bytes: inout [UInt8]) {
        let count = UInt16(roomID.utf8.count)
        bytes.append(UInt8(count & 0xFF))
        bytes.append(UInt8(count >> 8))
        bytes.append(contentsOf: roomID.utf8)
    }

    /// The room ID at the start of `body` and the offset after it.
    package static func roomID(in body: UnsafeRawBufferPointer) -> (String, Int)? {
        guard body.count >= 2 else { return nil }
        let count = Int(body[0]) | Int(body[1]) << 8
        guard body.count >= 2 + count, let roomID = String(validating: UnsafeRawBufferPointer(rebasing: body[2..<(2 + count)]), as: UTF8.self) else {
            return nil
        }
        return (roomID, 2 + count)
    }

    package static func writeCount(_ count: Int, into bytes: inout [UInt8]) {
        withUnsafeBytes(of: UInt32(count).littleEndian) { bytes.append(contentsOf: $0) }
    }

    /// Rooms and their members (a `membersReply` body).
    package static func writeMemberLists(_ lists: [(String, [UUID])], into bytes: inout [UInt8]) {
        writeCount(lists.count, into: &bytes)
        for (roomID, members) in lists {
            writeRoomID(roomID, into: &bytes)
            writeCount(members.count, into: &bytes)
            for member in members { writeClientID(member, into: &bytes) }
        }
    }

    /// The rooms and members of a `membersReply` body; nil when it is cut short.
    package static func memberLists(in body: UnsafeRawBufferPointer) -> [(String, [UUID])]? {
        guard let rooms = count(in: body, at: 0) else { return nil }
        var offset = 4
        var lists: [(String, [UUID])] = []
        for _ in 0..<rooms {
            guard let (roomID, length) = roomID(in: UnsafeRawBufferPointer(rebasing: body[offset...])) else { return nil }
            offset += length
            guard let members = count(in: body, at: offset), body.count >= offset + 4 + members * 16 else { return nil }
            offset += 4
            var ids: [UUID] = []
            ids.reserveCapacity(members)
            for _ in 0..<members {
                guard let id = clientID(in: body, at: offset) else { return nil }
                ids.append(id)
                offset += 16
            }
            lists.append((roomID, ids))
        }
        return lists
    }

    package static func count(in body: UnsafeRawBufferPointer, at offset: Int) -> Int? {
        guard body.count >= offset + 4 else { return nil }
        return Int(UInt32(littleEndian: body.loadUnaligned(fromByteOffset: offset, as: UInt32.self)))
    }
}

/// A relay in the cluster: its configured name and the incarnation of this process.
package struct ClusterNodeID: Hashable, Sendable, CustomStringConvertible {
    package var name: String
    package var incarnation: UInt64

    package init(name: String, incarnation: UInt64) {
        self.name = name
        self.incarnation = incarnation
    }

    package var description: String { name }
}
