import CGhostSyncShims
import Glibc

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// One shard of the relay: a pinned thread with its own epoll loop, its own SO_REUSEPORT
/// listener, the connections it owns and the rooms whose IDs hash to it.
///
/// Thread confinement: every stored property is touched only by this worker's thread (the
/// `core` it shares is thread-safe). Other threads reach a worker only through its `Mailbox`.
/// Properties used per frame are `@exclusivity(unchecked)` for the reason given on `Connection`.
///
/// One loop iteration: wait (timeout = next timer) → mailbox → socket events (accept, read and
/// relay) → due timers → flush every connection that has output, one `writev` each.
final class Worker {
    let index: Int
    let core: ServerCore
    let handler: any ServerHandler
    let listener: Listener
    let epoll: Epoll
    let mailbox: Mailbox
    let channelCapacity: Int
    let maxPayload: Int
    let idleTimeout: Int64
    let pingInterval: Int64
    let maxFramesPerSecond: Int?
    /// Coalescing window in milliseconds (0: flush every iteration) and the next flush time.
    let flushInterval: Int64
    private var nextFlushAt: Int64 = 0
    let maxRoomIDLength: Int

    /// Connection table; the index is the epoll token.
    @exclusivity(unchecked) var connections: [Connection?] = []
    private var freeSlots: [Int32] = []
    /// Slots freed this iteration, reusable from the next one (so a late event in the same
    /// epoll batch can never reach a different connection).
    private var slotsToFree: [Int32] = []
    /// Live rooms this shard owns, by ID (the current generation of each).
    var rooms: [String: LocalRoom] = [:]
    var wheel: TimerWheel
    private var dueTimers: [TimerWheel.Entry] = []
    private var nextTimerToken: UInt64 = 1
    /// Connections with queued output, flushed at the end of the iteration. Unretained, so
    /// queueing costs no atomic reference count. Invariant: each is kept alive by the connection
    /// table or, once closed, by `closedSinceFlush` until the next flush; a handoff takes the
    /// connection off this list before it leaves the worker.
    @exclusivity(unchecked) var flushList: [Unmanaged<Connection>] = []
    /// Connections closed while the flush list was not empty, held until it is (see `flushList`).
    var closedSinceFlush: [Connection] = []
    /// Monotonic milliseconds, read once per iteration.
    @exclusivity(unchecked) var now: Int64
    private var running = true
    /// Set while closing everything at shutdown: members are not told about each other leaving.
    var isShuttingDown = false
    /// This worker's counters: plain integers, published once per iteration.
    @exclusivity(unchecked) var statistics = WorkerStatistics()
    let published: PublishedStatistics
    private var acceptResumesAt: Int64?

    /// Scratch buffers, reused every iteration (invariant: only this thread touches them).
    let readBuffer: UnsafeMutableRawBufferPointer
    let vectors: UnsafeMutablePointer<iovec>
    private let events: UnsafeMutablePointer<epoll_event>
    private static let eventCapacity = 256
    static let readBufferSize = 64 * 1024
    /// Frame blocks for this worker's broadcasts (no malloc per message in steady state).
    /// Declared before the frames so that it is released after them.
    let framePool = FramePool()
    /// Constant frames, encoded once and shared by every outbox on this worker.
    let pingFrame = SharedFrame.encoding(.ping)
    let pongFrame = SharedFrame.encoding(.pong)

    private static let listenerToken = UInt64.max
    private static let signalToken = UInt64.max - 1
    static let readEvents = gs_EPOLLIN | gs_EPOLLRDHUP

    init(_ launch: WorkerLaunch) throws(SystemError) {
        index = launch.index
        core = launch.core
        handler = launch.core.handler
        listener = launch.listener
        epoll = launch.epoll
        mailbox = launch.core.mailboxes[launch.index]
        published = launch.core.statistics[launch.index]
        channelCapacity = core.configuration.channelCapacity
        maxPayload = core.configuration.maxPayload
        idleTimeout = core.idleTimeoutMilliseconds
        pingInterval = core.pingIntervalMilliseconds
        maxFramesPerSecond = core.configuration.maxFramesPerSecond
        flushInterval = core.configuration.flushInterval.wholeMilliseconds
        maxRoomIDLength = core.configuration.maxRoomIDLength
        now = MonotonicClock.nowMilliseconds()
        wheel = TimerWheel(now: now)
        readBuffer = .allocate(byteCount: Self.readBufferSize, alignment: 16)
        vectors = .allocate(capacity: Int(gs_IOV_MAX))
        events = .allocate(capacity: Self.eventCapacity)
        try epoll.add(listener.fd, events: gs_EPOLLIN, token: Self.listenerToken)
        try epoll.add(mailbox.signal.fd, events: gs_EPOLLIN, token: Self.signalToken)
    }

    deinit {
        readBuffer.deallocate()
        vectors.deallocate()
        events.deallocate()
        pingFrame.release()
        pongFrame.release()
    }

    /// The loop; returns after a `.stop` command, with every connection closed.
    func run() {
        while running {
            now = MonotonicClock.nowMilliseconds()
            // Handoffs that found a peer's ring full: retried in order, soon (see `Mailbox`).
            if mailbox.hasBacklog { mailbox.retryBacklog() }
            var timeout = waitTimeout()
            if mailbox.hasBacklog && (timeout < 0 || timeout > Mailbox.backlogRetryMilliseconds) {
                timeout = Mailbox.backlogRetryMilliseconds
            }
            // Block only once producers know to signal the eventfd; if a command is already
            // waiting, poll instead (`Mailbox.prepareToSleep` says why no wake-up is lost).
            if timeout != 0 && !mailbox.prepareToSleep() { timeout = 0 }
            let count: Int
            do {
                count = try Syscall.epollWait(epoll.fd, events, capacity: Self.eventCapacity, timeoutMilliseconds: timeout)
            } catch {
                break  // the epoll descriptor itself failed: nothing more this worker can do
            }
            if timeout != 0 { mailbox.wokeUp() }
            let busySince = MonotonicClock.nowNanoseconds()
            now = Int64(busySince / 1_000_000)
            statistics[.loopIterations] += 1
            // Commands first: a room deleted before a client's frame was sent is seen as deleted.
            // Every iteration: producers signal only a sleeping worker, so an awake one polls.
            processMailbox()
            for index in 0..<count where running {
                dispatch(events[index])
            }
            if !running { break }
            fireTimers()
            if let resume = acceptResumesAt, now >= resume { resumeAccepting() }
            if flushInterval == 0 || now >= nextFlushAt {
                flushAll()
                nextFlushAt = now + flushInterval
            }
            // Closed connections go once the flush list, the only thing that may still refer
            // to them, is empty (after a flush, or when nothing was queued).
            if flushList.isEmpty && !closedSinceFlush.isEmpty {
                closedSinceFlush.removeAll(keepingCapacity: true)
            }
            freeSlots.append(contentsOf: slotsToFree)
            slotsToFree.removeAll(keepingCapacity: true)
            statistics.recordIteration(nanoseconds: MonotonicClock.nowNanoseconds() &- busySince)
            published.publish(statistics)
        }
        closeEverything()
        published.publish(statistics)
    }

    private func waitTimeout() -> Int32 {
        var timeout = wheel.millisecondsUntilNext(now: now)
        if let resume = acceptResumesAt {
            timeout = min(timeout ?? .max, max(0, resume - now))
        }
        if flushInterval > 0 && !flushList.isEmpty {
            timeout = min(timeout ?? .max, max(0, nextFlushAt - now))
        }
        guard let timeout else { return -1 }
        return Int32(clamping: timeout)
    }

    private func dispatch(_ event: epoll_event) {
        let token = event.data.u64
        switch token {
        case Self.listenerToken:
            acceptConnections()
        case Self.signalToken:
            // Only the doorbell: the commands were taken at the top of this iteration, and one
            // posted since is seen before the next sleep (`Mailbox.prepareToSleep`).
            mailbox.signal.drain()
        default:
            guard let connection = connections[Int(token)] else { return }
            if event.events & (gs_EPOLLIN | gs_EPOLLERR | gs_EPOLLHUP | gs_EPOLLRDHUP) != 0 {
                read(connection)
            }
            if event.events & gs_EPOLLOUT != 0, isOwned(connection) {
                queueFlush(connection)
            }
        }
    }

    /// Whether `connection` is still open and on this worker (not closed, not handed off).
    func isOwned(_ connection: Connection) -> Bool {
        connection.slot >= 0 && !connection.isClosed && connections[Int(connection.slot)] === connection
    }

    /// Runs every queued command in place (no allocation); a command may post more.
    private func processMailbox() {
        mailbox.drain { command in
            switch command {
            case .adopt(let handoff): adopt(handoff.connection)
            case .roomDeleted(let roomID, let generation): markDeleted(roomID, generation: generation)
            case .stop: running = false
            }
        }
    }

    // MARK: Connection table

    /// Gives the connection a slot and registers it for reading.
    func register(_ connection: Connection) -> Bool {
        let slot: Int32
        if let free = freeSlots.popLast() {
            slot = free
        } else {
            slot = Int32(connections.count)
            connections.append(nil)
        }
        do {
            try epoll.add(connection.fd, events: Self.readEvents, token: UInt64(slot))
        } catch {
            freeSlots.append(slot)
            return false
        }
        connections[Int(slot)] = connection
        connection.slot = slot
        connection.wantsWritable = false
        return true
    }

    /// Takes the connection out of this worker's table (its socket stays open).
    func unregister(_ connection: Connection) {
        let slot = connection.slot
        guard slot >= 0 else { return }
        connections[Int(slot)] = nil
        slotsToFree.append(slot)
        connection.slot = -1
        connection.timerToken &+= 1  // cancels its wheel entry
    }

    // MARK: Accepting

    private func acceptConnections() {
        // Bounded per iteration so a connection storm cannot starve established clients.
        for _ in 0..<64 {
            let accepted: (fd: Int32, address: SocketAddress)?
            do {
                accepted = try Syscall.accept(listener.fd)
            } catch {
                if error.errno == EMFILE || error.errno == ENFILE || error.errno == ENOBUFS || error.errno == ENOMEM {
                    pauseAccepting()
                }
                return
            }
            guard let accepted else { return }
            admit(fd: accepted.fd, address: accepted.address)
        }
    }

    private func admit(fd: Int32, address: SocketAddress) {
        let count = core.connectionCount.wrappingAdd(1, ordering: .relaxed).newValue
        guard count <= core.configuration.maxClients, core.admitIP(address) else {
            abandonAdmission(fd: fd, address: address, releasingIP: false)
            statistics[.connectionsRefused] += 1
            return
        }
        guard handler.onConnect(address) else {
            abandonAdmission(fd: fd, address: address, releasingIP: true)
            statistics[.connectionsRefused] += 1
            return
        }
        statistics[.connectionsAccepted] += 1
        ClientSocket.configure(fd)
        let connection = Connection(
            fd: fd, id: UUID(), address: address, maxPayload: maxPayload, now: now, pingInterval: pingInterval)
        guard register(connection) else {
            connection.isClosed = true
            abandonAdmission(fd: fd, address: address, releasingIP: true)
            return
        }
        core.clients.insert(connection.record)
        scheduleTimer(connection)
    }

    /// Takes back what `admit` counted for a connection it does not keep, and closes the socket.
    private func abandonAdmission(fd: Int32, address: SocketAddress, releasingIP: Bool) {
        if releasingIP { core.releaseIP(address) }
        core.connectionCount.wrappingSubtract(1, ordering: .relaxed)
        Syscall.close(fd)
    }

    /// Out of descriptors: stop polling the listener for a moment instead of spinning on it.
    private func pauseAccepting() {
        guard acceptResumesAt == nil else { return }
        epoll.remove(listener.fd)
        acceptResumesAt = now + 100
    }

    private func resumeAccepting() {
        acceptResumesAt = nil
        try? epoll.add(listener.fd, events: gs_EPOLLIN, token: Self.listenerToken)
    }

    // MARK: Timers

    func scheduleTimer(_ connection: Connection) {
        connection.timerToken = nextTimerToken
        nextTimerToken &+= 1
        let deadline = min(connection.nextPingAt, connection.lastFrameAt + idleTimeout)
        wheel.schedule(.init(owner: connection.slot, token: connection.timerToken, deadline: deadline))
    }

    private func fireTimers() {
        wheel.advance(to: now, collecting: &dueTimers)
        guard !dueTimers.isEmpty else { return }
        for entry in dueTimers {
            guard let connection = connections[Int(entry.owner)], connection.timerToken == entry.token else { continue }
            checkLiveness(connection)
        }
        dueTimers.removeAll(keepingCapacity: true)
    }

    /// Ping tick and idle check. The idle deadline is lazy: frames only stamp `lastFrameAt`, and
    /// the timer, when it comes due, re-arms itself from that stamp.
    private func checkLiveness(_ connection: Connection) {
        if now >= connection.nextPingAt {
            if connection.pingOutstanding {
                close(connection, reason: .pingTimeout)
                return
            }
            connection.pingOutstanding = true
            enqueue(pingFrame, to: connection)
            connection.nextPingAt += pingInterval
            if connection.nextPingAt <= now { connection.nextPingAt = now + pingInterval }
        }
        if now - connection.lastFrameAt >= idleTimeout {
            close(connection, reason: .idleTimeout)
            return
        }
        scheduleTimer(connection)
    }

    // MARK: Closing

    /// Ends a connection: leaves its room (others get PlayerLeft), closes the socket, forgets it.
    func close(_ connection: Connection, reason: DisconnectReason) {
        guard !connection.isClosed else { return }
        connection.isClosed = true
        closedSinceFlush.append(connection)
        leaveRoom(connection)
        unregister(connection)
        Syscall.close(connection.fd)  // also removes it from the epoll set
        connection.outbox.removeAll()
        connection.decoder.reset()
        core.clients.remove(connection.id)
        // The per-IP slot goes back before the count drops (and the drop is a release), so
        // whoever sees `clientCount` fall can reconnect from the same address at once.
        core.releaseIP(connection.address)
        core.connectionCount.wrappingSubtract(1, ordering: .releasing)
        statistics.countDisconnect(reason)
        handler.onDisconnect(clientID: connection.id, address: connection.address, reason: reason)
    }

    /// Shutdown: stop accepting; send what is queued; then a lingering close, so that every
    /// client sees a clean end-of-stream rather than a reset: half-close (FIN after the queued
    /// bytes), keep reading and discarding until the client closes its side, and only then
    /// close. Clients that do not close within `shutdownGracePeriod` are closed anyway.
    private func closeEverything() {
        isShuttingDown = true
        epoll.remove(listener.fd)
        listener.close()
        var lingering = 0
        for case let connection? in connections where !connection.isClosed {
            flush(connection)
            guard !connection.isClosed else { continue }
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

    /// Longest a shutdown waits for clients to close their side, in milliseconds.
    static let shutdownGracePeriod: Int64 = 1000

    /// Reads and discards what the client sent; true once it has closed its side (or failed).
    private func drainInput(_ connection: Connection) -> Bool {
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
