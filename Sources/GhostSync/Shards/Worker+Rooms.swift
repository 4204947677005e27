#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

// Joins, leaves and the relay itself. Everything here runs on the worker that owns the room
// (or, for the first half of a cross-shard join, the worker that holds the connection).
extension Worker {
    /// The relay path: encode once, reference the same frame from every other member's outbox.
    /// No lock, no atomic, no allocation per recipient; the syscalls come later, one writev per
    /// member per loop iteration (`flushAll`).
    func relay(_ data: UnsafeRawBufferPointer, from sender: Connection) {
        guard let room = sender.roomReference else {
            send(.error("not in a room"), to: sender)
            return
        }
        // Borrowed: the sender keeps its room until it leaves, which cannot happen in here.
        room._withUnsafeGuaranteedRef { relay(data, from: sender, in: $0) }
    }

    private func relay(_ data: UnsafeRawBufferPointer, from sender: Connection, in room: LocalRoom) {
        if room.isDeleted {
            send(.error("room not found: \(room.id)"), to: sender)
            return
        }
        if let broadcastFilter {
            switch callingHook({ broadcastFilter.decide(sender.id, room.id, data) }) {
            case .relay:
                break
            case .drop:
                statistics[.broadcastsFiltered] += 1
                return
            case .reject(let text):
                statistics[.broadcastsFiltered] += 1
                send(.error(text), to: sender)
                return
            }
        }
        if room.memberCount > 1 || room.cluster?.subscription != nil {
            let frame = broadcastFrame(senderID: sender.id, data: data)
            if cluster != nil { clusterPublish(frame, in: room) }
            fanOut(frame, in: room, except: sender)
        }
        callingHook { handler.onBroadcast(clientID: sender.id, roomID: room.id, data: data) }
    }

    /// The one fan-out every room message goes through: `frame` (encoded once) is queued for
    /// every member but `excluded`, then the caller's reference is given up. In a room with
    /// WebSocket members the frame is also made once in WebSocket framing (header and payload
    /// contiguous), so each recipient's write takes one iovec per frame, as for TCP: at most one
    /// encoding per transport per message, never one per recipient.
    /// Per recipient the loop only queues; each frame's references (one per queue) and the
    /// `framesQueued` statistic are added once after it.
    @inline(__always)
    func fanOut(_ frame: SharedFrame, in room: LocalRoom, except excluded: Connection? = nil) {
        if room.webSocketMemberCount == 0 {
            var queued = 0
            room.forEachMember(except: excluded) {
                if enqueueTakingReference(frame, to: $0) { queued &+= 1 }
            }
            frame.retain(count: queued)
            statistics[.framesQueued] &+= queued
        } else {
            let webSocketFrame = SharedFrame.webSocketFraming(of: frame, pool: framePool)
            var queuedTCP = 0
            var queuedWebSocket = 0
            room.forEachMember(except: excluded) {
                if $0.isWebSocket {
                    if enqueueTakingReference(webSocketFrame, to: $0) { queuedWebSocket &+= 1 }
                } else {
                    if enqueueTakingReference(frame, to: $0) { queuedTCP &+= 1 }
                }
            }
            frame.retain(count: queuedTCP)
            webSocketFrame.retain(count: queuedWebSocket)
            statistics[.framesQueued] &+= queuedTCP &+ queuedWebSocket
            webSocketFrame.release()
        }
        frame.release()
    }

    /// A Broadcast frame (from the pool) from `senderID` carrying `data`; the caller owns it.
    @inline(__always)
    func broadcastFrame(senderID: UUID, data: UnsafeRawBufferPointer) -> SharedFrame {
        let payloadSize = ServerWire.broadcastPayloadSize(dataCount: data.count)
        let frame = framePool.frame(count: WireSize.framePrefix + payloadSize)
        var writer = WireWriter(frame.buffer)
        writer.writeFrameLength(payloadSize)
        ServerWire.writeBroadcastBody(senderID: senderID, data: data, into: &writer)
        return frame
    }

    /// First half of a join, on the worker holding the connection: check, ask the hook, leave
    /// the old room. Completes here if this worker owns the room; otherwise pauses decoding
    /// so the connection (with its unread bytes) can move to the owner.
    func requestJoin(_ connection: Connection, roomID: String) -> FrameAction {
        let length = roomID.utf8.count
        guard length <= maxRoomIDLength else {
            send(.error("room ID too long: \(length) bytes, the limit is \(maxRoomIDLength)"), to: connection)
            return .proceed
        }
        guard let record = core.rooms.record(roomID) else {
            send(.error("room not found: \(roomID)"), to: connection)
            return .proceed
        }
        guard !core.isWorkerFailed(record.shard) else {
            send(.error("room unavailable: \(roomID)"), to: connection)
            return .proceed
        }
        // A full room is refused here, where the client can stay in its current room; the
        // room's worker checks again, exactly, when the join arrives (`completeJoin`).
        if maxClientsPerRoom != .max, record.memberCount >= maxClientsPerRoom {
            refuseFullRoom(roomID, to: connection)
            return .proceed
        }
        guard callingHook({ handler.onJoin(clientID: connection.id, roomID: roomID, address: connection.address) }) else {
            send(.error("join rejected"), to: connection)
            return .proceed
        }
        leaveRoom(connection)
        if record.shard == index {
            completeJoin(connection, roomID: roomID)
            return .proceed
        }
        connection.pendingJoin = roomID
        return .pause
    }

    /// Second half, on the room's owner: add the member, tell it and the others.
    func completeJoin(_ connection: Connection, roomID: String) {
        assertOwner(of: connection)
        assertNotInHook()
        // The room may have been deleted while the connection was in transit.
        guard let record = core.rooms.record(roomID), record.shard == index else {
            send(.error("room not found: \(roomID)"), to: connection)
            callingHook { handler.onJoinFailed(clientID: connection.id, roomID: roomID, reason: .roomNotFound) }
            return
        }
        let room: LocalRoom
        if let live = rooms[roomID], live.generation == record.generation {
            room = live
        } else {
            rooms[roomID]?.isDeleted = true  // an older generation whose deletion is still in the mailbox
            room = LocalRoom(record: record)
            rooms[roomID] = room
        }
        // Every join of this room completes here, on its worker: the capacity check is exact
        // on one relay. In a cluster it counts the members the other relays announced, which
        // a join elsewhere at the same moment (or before this relay's first member's sync) is
        // not yet among (docs/cluster.md).
        guard room.memberCount + (room.cluster?.remoteMemberCount ?? 0) < maxClientsPerRoom else {
            refuseFullRoom(roomID, to: connection)
            callingHook { handler.onJoinFailed(clientID: connection.id, roomID: roomID, reason: .roomFull) }
            return
        }
        room.add(connection)
        connection.room = room
        if room.memberCount == 1 { clusterRoomGainedFirstMember(room) }
        statistics[.joins] += 1
        record.addMember(connection.record)
        connection.record.setRoomID(roomID)
        send(.joined(clientID: connection.id, roomID: roomID), to: connection)
        if cluster != nil {
            clusterAnnounce(.joined, clientID: connection.id, in: room)
            if room.memberCount == 1 { requestSync(of: room) }
        }
        if room.memberCount > 1 {
            fanOut(SharedFrame.encoding(.playerJoined(clientID: connection.id), pool: framePool), in: room, except: connection)
        }
        callingHook { handler.onJoined(clientID: connection.id, roomID: roomID) }
    }

    private func refuseFullRoom(_ roomID: String, to connection: Connection) {
        statistics[.joinsRefusedFull] += 1
        send(.error("room full: \(roomID)"), to: connection)
    }

    /// Leaves the current room, if any: the others get PlayerLeft, then `onLeave` runs.
    func leaveRoom(_ connection: Connection) {
        assertOwner(of: connection)
        assertNotInHook()
        guard let room = connection.room else { return }
        room.remove(connection)
        connection.room = nil
        statistics[.leaves] += 1
        room.record.removeMember(connection.id)
        connection.record.setRoomID(nil)
        if !room.isEmpty && !isShuttingDown {
            fanOut(SharedFrame.encoding(.playerLeft(clientID: connection.id), pool: framePool), in: room)
        }
        if cluster != nil {
            clusterAnnounce(.left, clientID: connection.id, in: room)
            if room.isEmpty { clusterRoomLostLastMember(room) }
        }
        callingHook { handler.onLeave(clientID: connection.id, roomID: room.id) }
    }

    /// Soft delete: members stay, but the room no longer relays and cannot be joined.
    func markDeleted(_ roomID: String, generation: UInt64) {
        assertNotInHook()
        guard let room = rooms[roomID], room.generation == generation else { return }
        room.isDeleted = true
        rooms[roomID] = nil
        clusterRoomLostLastMember(room)
    }
}
