import CGhostSyncShims
import Glibc

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

// How connections and the worker itself end: one connection's close, the lingering close of
// everything at shutdown, and failing loudly when the event loop cannot go on.
extension Worker {
    /// Ends a connection: leaves its room (others get PlayerLeft), closes the socket, forgets it.
    func close(_ connection: Connection, reason: DisconnectReason) {
        assertOwner(of: connection)
        assertNotInHook()
        guard !connection.isClosed else { return }
        connection.isClosed = true
        closedSinceFlush.append(connection)
        leaveRoom(connection)
        // A WebSocket that was never upgraded was never a client: no hook, no counts.
        var wasClient = true
        if let session = connection.webSocket {
            wasClient = session.phase == .open
            writeFinalWebSocketBytes(connection, session: session, reason: reason)
            session.decoder.reset()
            let slot = connection.slot
            unregister(connection)
            linger(connection.fd, registeredAs: slot)
        } else {
            unregister(connection)
            Syscall.close(connection.fd)  // also removes it from the epoll set
        }
        connection.outbox.removeAll()
        connection.decoder.reset()
        core.forget(connection.record)
        guard wasClient else { return }
        statistics.countDisconnect(reason)
        if connection.webSocket != nil { statistics[.webSocketDisconnects] += 1 }
        callingHook { handler.onDisconnect(clientID: connection.id, address: connection.address, reason: reason) }
    }

    /// Half-closes an ended WebSocket connection's socket and keeps reading it until the peer
    /// closes too (see `lingeringSockets`).
    private func linger(_ fd: Int32, registeredAs slot: Int32) {
        Syscall.shutdownWrite(fd)
        guard !isShuttingDown, slot >= 0,
              (try? epoll.modify(fd, events: Self.readEvents, token: Self.lingeringTokenFlag | UInt64(UInt32(bitPattern: fd)))) != nil
        else {
            Syscall.close(fd)
            return
        }
        lingeringSockets[fd] = now + Self.lingeringTimeout
    }

    func drainLingeringSocket(_ fd: Int32) {
        guard lingeringSockets[fd] != nil else { return }
        for _ in 0..<16 {
            switch (try? Syscall.read(fd, into: readBuffer)) ?? .endOfFile {
            case .transferred: continue
            case .wouldBlock: return
            case .endOfFile:
                lingeringSockets[fd] = nil
                Syscall.close(fd)
                return
            }
        }
    }

    func closeExpiredLingeringSockets() {
        for (fd, deadline) in lingeringSockets where now >= deadline {
            lingeringSockets[fd] = nil
            Syscall.close(fd)
        }
    }

    func closeLingeringSockets() {
        for fd in lingeringSockets.keys { Syscall.close(fd) }
        lingeringSockets.removeAll()
    }

    /// How long an ended WebSocket connection's socket waits for the peer's side to close.
    static let lingeringTimeout: Int64 = 2000
    /// How often lingering sockets are checked for their deadline, in milliseconds.
    static let lingeringCheckInterval: Int64 = 250

    /// Shutdown: stop accepting; send what is queued; then a lingering close, so that every
    /// client sees a clean end-of-stream rather than a reset: half-close (FIN after the queued
    /// bytes), keep reading and discarding until the client closes its side, and only then
    /// close. Clients that do not close within `shutdownGracePeriod` are closed anyway.
    func closeEverything() {
        isShuttingDown = true
        announceClusterLeaving()
        cluster?.shutDown()
        epoll.remove(listener.fd)
        listener.close()
        if let webSocketListener {
            epoll.remove(webSocketListener.fd)
            webSocketListener.close()
        }
        closeLingeringSockets()
        // The doorbell that brought `.stop` may still be readable (the loop stopped before
        // dispatching its event): left in the set, it would make every lingering wait below
        // return at once, spinning for the whole grace period.
        epoll.remove(mailbox.signal.fd)
        var lingering = 0
        for case let connection? in connections where !connection.isClosed {
            flush(connection)
            guard !connection.isClosed else { continue }
            if let session = connection.webSocket {
                // Its Close (1001) now, behind what was queued; the lingering read below waits
                // for the browser's answering Close and TCP close.
                writeFinalWebSocketBytes(connection, session: session, reason: .connectionClosed)
            }
            Syscall.shutdownWrite(connection.fd)
            try? epoll.modify(connection.fd, events: Self.readEvents, token: UInt64(connection.slot))
            lingering += 1
        }
        flushList.removeAll()
        closedSinceFlush.removeAll()
        let deadline = MonotonicClock.nowMilliseconds() + Self.shutdownGracePeriod
        while lingering > 0 {
            let remaining = deadline - MonotonicClock.nowMilliseconds()
            guard remaining > 0,
                  let count = try? Syscall.epollWait(epoll.fd, events, capacity: Self.eventCapacity, timeoutMilliseconds: Int32(remaining))
            else { break }
            for index in 0..<count {
                let token = events[index].data.u64
                guard token < Self.signalToken, let connection = connections[Int(token)], !connection.isClosed else { continue }
                if drainInput(connection) {
                    close(connection, reason: .connectionClosed)
                    lingering -= 1
                }
            }
        }
        for case let connection? in connections where !connection.isClosed {
            close(connection, reason: .connectionClosed)
        }
        rooms.removeAll()
        closedSinceFlush.removeAll()
        epoll.close()
    }

    /// Puts /dev/null where the epoll descriptor was (dup2 closes the epoll instance), so the
    /// next `epoll_wait` fails with EINVAL and `fail` later closes the descriptor exactly once.
    func breakEventLoopForTesting() {
        let devNull = open("/dev/null", O_RDONLY | O_CLOEXEC)
        guard devNull >= 0 else { return }
        dup2(devNull, epoll.fd)
        Glibc.close(devNull)
    }

    /// The loop cannot go on (see `WorkerFailure`): refuse joins to this shard from now on, end
    /// every connection held here and every one on its way here, then say so.
    func fail(_ failure: WorkerFailure) {
        core.markFailed(failure)
        isShuttingDown = true  // the rooms all end with it: no PlayerLeft to members that are closing too
        epoll.close()
        listener.close()
        webSocketListener?.close()
        cluster?.close()
        closeLingeringSockets()
        for case let connection? in connections where !connection.isClosed {
            close(connection, reason: .connectionReset)
        }
        flushList.removeAll()
        closedSinceFlush.removeAll()
        rooms.removeAll()
        published.publish(statistics)
        callingHook { handler.onWorkerFailed(index, reason: failure.reason) }
        serveFailedShard()
    }

    /// What a failed worker does until shutdown: the other workers may still post to it (a
    /// handoff that passed the failed-shard check just before the failure, a forwarded server
    /// message), so it keeps taking its mailbox, waiting on the eventfd alone, and ends every
    /// connection that arrives (`endStranded`: `onJoinFailed(.roomUnavailable)`, then
    /// `onDisconnect`). The mailbox itself is closed only at shutdown, when no worker posts
    /// any more.
    private func serveFailedShard() {
        while running {
            if mailbox.prepareToSleep() {
                var descriptor = pollfd(fd: mailbox.signal.fd, events: Int16(POLLIN), revents: 0)
                _ = poll(&descriptor, 1, -1)
                mailbox.wokeUp()
                mailbox.signal.drain()
            }
            mailbox.drain { command in
                switch command {
                case .adopt(let handoff): core.endStranded(handoff.connection)
                case .stop: running = false
                default: break  // its rooms and clients are gone
                }
            }
        }
    }

    /// Longest a shutdown waits for clients to close their side, in milliseconds.
    static let shutdownGracePeriod: Int64 = 1000

    /// Reads and discards what the client sent; true once it has closed its side (or failed).
    func drainInput(_ connection: Connection) -> Bool {
        for _ in 0..<16 {
            switch (try? Syscall.read(connection.fd, into: readBuffer)) ?? .endOfFile {
            case .transferred: continue
            case .wouldBlock: return false
            case .endOfFile: return true
            }
        }
        return false
    }
}
