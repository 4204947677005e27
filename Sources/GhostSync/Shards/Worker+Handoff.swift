// Cross-shard handoff (design invariant 4): a connection that joins a room owned by another
// worker moves there whole, so the room's fan-out stays on one core.
//
// The rule after a handoff: once `handOff` has posted the connection, the sending worker never
// touches it again: not its fields, not its slot, not `isClosed`. The adopting worker may be
// writing them already. Every caller of a frame handler (`read`, `decode`, `adopt`, `dispatch`)
// therefore asks only its own connection table, by the token it started from, whether the
// connection is still there (`connections[slot] === connection`) before going on with it.
extension Worker {
    /// Sending side. The connection has left its old room and its decoder is paused right after
    /// the JoinRoom frame, holding every byte read but not yet handled.
    func handOff(_ connection: Connection) {
        assertOwner(of: connection)
        assertNotInHook()
        guard let roomID = connection.pendingJoin else { return }
        let target = core.shardMap.shard(of: roomID)
        epoll.remove(connection.fd)  // stop reading here; unread bytes stay in the kernel for the target
        unregister(connection)
        if connection.flushQueued, let position = flushList.firstIndex(where: { $0.toOpaque() == Unmanaged.passUnretained(connection).toOpaque() }) {
            flushList.remove(at: position)
        }
        connection.flushQueued = false
        // Queued frames are shared with this worker's other clients: copy what is unsent.
        connection.handoffBytes = connection.outbox.takeUnsentBytes(webSocket: connection.webSocket != nil)
        statistics[.handoffsOut] += 1
        #if DEBUG
        connection.owner = nil
        #endif
        // Last touch: from here the target routes server-side commands for it (`ClientRecord.owner`).
        connection.record.owner.store(target, ordering: .releasing)
        core.mailboxes[target].post(.adopt(Handoff(connection: connection, core: core)), from: mailbox)
    }

    /// Receiving side: register, restore queued output and timers, finish the join, then
    /// handle the bytes that came along, in order, before anything newer is read.
    func adopt(_ connection: Connection) {
        assertOnWorkerThread()
        statistics[.handoffsIn] += 1
        guard register(connection) else {
            connection.slot = -1
            close(connection, reason: .connectionReset)
            return
        }
        if !connection.handoffBytes.isEmpty {
            // Already in the connection's wire format (WebSocket headers included).
            let frame = connection.handoffBytes.withUnsafeBytes { SharedFrame.verbatim($0, pool: framePool) }
            connection.handoffBytes = []
            connection.outbox.append(frame)
            frame.release()
            queueFlush(connection)
        }
        scheduleTimer(connection)
        if let roomID = connection.pendingJoin {
            connection.pendingJoin = nil
            completeJoin(connection, roomID: roomID)
        }
        if let session = connection.webSocket {
            if session.decoder.hasPendingBytes {
                decodeWebSocket(connection, session: session) { decoder, handle throws(WebSocketError) in try decoder.resume(handle) }
            }
        } else if connection.decoder.hasPendingBytes {
            decode(connection) { decoder, handle throws(WireError) in try decoder.resume(handle) }
        }
    }
}
