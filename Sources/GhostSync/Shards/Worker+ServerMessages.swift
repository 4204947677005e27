#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

// Messages and actions that come from the server itself (`ServerHandle.broadcast`, `send`,
// `disconnect`), run by the worker that owns the room or holds the client. They arrive through
// the mailbox, never inline in a hook (see `assertNotInHook`).
extension Worker {
    /// A server broadcast to a room of this shard: encoded once, queued for every member, as
    /// a client's broadcast is. A room deleted (or re-created) since the call gets nothing.
    /// In a cluster it also goes to the other relays, whether or not the room has members here.
    func broadcastFromServer(_ data: [UInt8], roomID: String, generation: UInt64) {
        // The members here, if the room (this generation of it) has any.
        let room = rooms[roomID].flatMap { $0.generation == generation && !$0.isDeleted && !$0.isEmpty ? $0 : nil }
        guard room != nil || (cluster != nil && core.rooms.record(roomID)?.generation == generation) else { return }
        statistics[.serverBroadcasts] += 1
        let frame = data.withUnsafeBytes { broadcastFrame(senderID: ServerHandle.serverID, data: $0) }
        if cluster != nil {
            if let room {
                clusterPublish(frame, in: room)
            } else {
                clusterPublish(frame, to: Array(clusterSubjects.room(roomID).utf8))
            }
        }
        if let room {
            fanOut(frame, in: room)
        } else {
            frame.release()
        }
    }

    /// Runs the command if this worker holds its client (in the client's call order);
    /// forwards it to the worker that does if the client has moved; drops it if the client is
    /// gone.
    func perform(_ command: ClientCommand) {
        let owner = command.record.owner.load(ordering: .acquiring)
        guard owner >= 0 else { return }  // disconnected meanwhile
        guard owner == index else {
            core.mailboxes[owner].post(.toClient(command), from: mailbox)
            return
        }
        guard let connection = heldConnection(for: command.record) else {
            // Handed to this worker, but its adoption is still behind this command in the
            // mailbox: run it once the mailbox has been processed.
            deferredClientActions.append(command)
            return
        }
        guard command.sequence == connection.nextActionSequence else {
            // An earlier action is still on its way (forwarded while the client moved).
            let position = connection.earlyActions.firstIndex { $0.sequence > command.sequence } ?? connection.earlyActions.endIndex
            connection.earlyActions.insert(command, at: position)
            return
        }
        run(command.action, on: connection)
        connection.nextActionSequence &+= 1
        while let next = connection.earlyActions.first, next.sequence == connection.nextActionSequence, !connection.isClosed {
            connection.earlyActions.removeFirst()
            run(next.action, on: connection)
            connection.nextActionSequence &+= 1
        }
    }

    private func run(_ action: ClientAction, on connection: Connection) {
        guard !connection.isClosed else { return }
        switch action {
        case .send(let data):
            let frame = data.withUnsafeBytes { broadcastFrame(senderID: ServerHandle.serverID, data: $0) }
            enqueue(frame, to: connection)
            frame.release()
        case .disconnect(let reason):
            // Tell it why, with what is still queued, before it goes (a full socket loses it).
            let kicked = DisconnectReason.kicked(reason)
            send(.error(kicked.description), to: connection)
            flush(connection)
            close(connection, reason: kicked)
        }
    }

    /// The connection behind `record` if it is in this worker's table. Only called when
    /// `record.owner` names this worker, so the reference is alive (held by this table, or by
    /// the mailbox that is bringing it here) and no other thread writes it any more.
    private func heldConnection(for record: ClientRecord) -> Connection? {
        guard let connection = record.connection, connection.slot >= 0, !connection.isClosed,
              connections[Int(connection.slot)] === connection
        else { return nil }
        return connection
    }

    /// Client actions that arrived before their connection's adoption: retried after every
    /// mailbox pass. Each entry is retried until the connection is here, has moved on
    /// (forwarded) or has gone (dropped).
    func retryDeferredClientActions() {
        guard !deferredClientActions.isEmpty else { return }
        let pending = deferredClientActions
        deferredClientActions.removeAll(keepingCapacity: true)
        for command in pending { perform(command) }
    }
}
