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
    /// The WebSocket transport's listener on this worker, when it is on.
    let webSocketListener: Listener?
    /// Its settings (a placeholder with nothing served when the transport is off).
    let webSocketSettings: WebSocketConfiguration
    let handshakeTimeout: Int64
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
    let maxClientsPerRoom: Int
    /// The handler's broadcast filter, read once: without one the relay path calls nothing.
    let broadcastFilter: BroadcastFilter?

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
    var running = true
    /// Set while closing everything at shutdown: members are not told about each other leaving.
    var isShuttingDown = false
    /// This worker's counters: plain integers, published once per iteration.
    @exclusivity(unchecked) var statistics = WorkerStatistics()
    let published: PublishedStatistics
    var acceptResumesAt: Int64?
    /// Server-side client actions waiting for their connection's adoption (see
    /// `retryDeferredClientActions`).
    var deferredClientActions: [ClientCommand] = []
    /// Sockets of ended WebSocket connections, half-closed after their last bytes and read
    /// until the peer closes too (or the deadline passes), so that data still arriving cannot
    /// turn the close into a reset that destroys the Close frame or HTTP answer in flight.
    /// By descriptor; the value is the deadline.
    var lingeringSockets: [Int32: Int64] = [:]
    /// This worker's NATS connection when the server is in a cluster (Worker+Cluster.swift).
    let cluster: ClusterLink?
    let clusterHeartbeatInterval: Int64
    let clusterMissedHeartbeats: Int
    var nextClusterTickAt: Int64 = 0
    var clusterFlushQueued = false
    var clusterLastError: String?
    /// The rooms this worker subscribed to, by subscription ID.
    var roomsBySubscription: [UInt64: LocalRoom] = [:]
    var heartbeatSubscription: UInt64?
    var inboxSubscription: UInt64?
    /// The other relays this worker has heard from, by name.
    var peers: [String: ClusterPeer] = [:]
    let clusterSubjects = try! ClusterSubjects()  // the default prefix is valid
    #if DEBUG
    /// The worker's thread (it is created on it) and how deep in hook calls it is: the
    /// confinement checks of Worker+Confinement.swift.
    let thread = pthread_self()
    var hookDepth = 0
    #endif

    /// Scratch buffers, reused every iteration (invariant: only this thread touches them).
    let readBuffer: UnsafeMutableRawBufferPointer
    let vectors: UnsafeMutablePointer<iovec>
    /// WebSocket headers for one `writev` (`Outbox.gatherWebSocket`), one slot per vector.
    let webSocketHeaders: UnsafeMutableRawPointer
    /// Where a flush of many small frames copies them into one contiguous run (`Worker.writeGathered`).
    let writeRun: UnsafeMutableRawBufferPointer
    let events: UnsafeMutablePointer<epoll_event>
    static let eventCapacity = 256
    static let readBufferSize = 64 * 1024
    /// Frame blocks for this worker's broadcasts (no malloc per message in steady state).
    /// Declared before the frames so that it is released after them.
    let framePool = FramePool()
    /// Constant frames, encoded once and shared by every outbox on this worker.
    let pingFrame = SharedFrame.encoding(.ping)
    let pongFrame = SharedFrame.encoding(.pong)

    static let listenerToken = UInt64.max
    static let signalToken = UInt64.max - 1
    static let webSocketListenerToken = UInt64.max - 2
    static let clusterToken = UInt64.max - 3
    /// Tokens with this bit are lingering sockets (the low bits are the descriptor); connection
    /// tokens are table slots, far below it.
    static let lingeringTokenFlag: UInt64 = 1 << 62
    static let readEvents = gs_EPOLLIN | gs_EPOLLRDHUP

    init(_ launch: WorkerLaunch) throws(SystemError) {
        index = launch.index
        core = launch.core
        handler = launch.core.handler
        listener = launch.listener
        webSocketListener = launch.webSocketListener
        webSocketSettings = launch.core.configuration.webSocket ?? WebSocketConfiguration(bindAddress: "")
        handshakeTimeout = webSocketSettings.handshakeTimeout.wholeMilliseconds
        if let settings = launch.core.configuration.cluster {
            let servers = settings.servers.compactMap { try? ClusterConfiguration.address(of: $0) }
            cluster = ClusterLink(
                node: launch.core.clusterNode!, servers: servers, maxPendingBytes: settings.maxPendingBytes,
                epoll: launch.epoll, token: Self.clusterToken)
            clusterHeartbeatInterval = settings.heartbeatInterval.wholeMilliseconds
            clusterMissedHeartbeats = settings.missedHeartbeatsForDead
        } else {
            cluster = nil
            clusterHeartbeatInterval = 1000
            clusterMissedHeartbeats = 3
        }
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
        maxClientsPerRoom = core.configuration.maxClientsPerRoom ?? .max
        broadcastFilter = launch.core.handler.broadcastFilter
        now = MonotonicClock.nowMilliseconds()
        wheel = TimerWheel(now: now)
        readBuffer = .allocate(byteCount: Self.readBufferSize, alignment: 16)
        vectors = .allocate(capacity: Int(gs_IOV_MAX))
        webSocketHeaders = .allocate(byteCount: Int(gs_IOV_MAX) * Outbox.headerStride, alignment: 16)
        writeRun = .allocate(byteCount: Self.writeRunCapacity, alignment: 64)
        events = .allocate(capacity: Self.eventCapacity)
        try epoll.add(listener.fd, events: gs_EPOLLIN, token: Self.listenerToken)
        try epoll.add(mailbox.signal.fd, events: gs_EPOLLIN, token: Self.signalToken)
        if let webSocketListener {
            try epoll.add(webSocketListener.fd, events: gs_EPOLLIN, token: Self.webSocketListenerToken)
        }
    }

    deinit {
        readBuffer.deallocate()
        vectors.deallocate()
        webSocketHeaders.deallocate()
        writeRun.deallocate()
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
                // The epoll descriptor itself failed: nothing more this worker can do.
                fail(WorkerFailure(worker: index, reason: "epoll_wait: \(error)"))
                return
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
            if !lingeringSockets.isEmpty { closeExpiredLingeringSockets() }
            if cluster != nil { clusterTick() }
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
        if !lingeringSockets.isEmpty {
            timeout = min(timeout ?? .max, Self.lingeringCheckInterval)
        }
        if let cluster {
            let due = cluster.state == .disconnected ? min(cluster.retryAt, nextClusterTickAt) : nextClusterTickAt
            timeout = min(timeout ?? .max, max(0, due - now))
        }
        guard let timeout else { return -1 }
        return Int32(clamping: timeout)
    }

    private func dispatch(_ event: epoll_event) {
        let token = event.data.u64
        switch token {
        case Self.listenerToken:
            acceptConnections(from: listener, transport: .tcp)
        case Self.webSocketListenerToken:
            if let webSocketListener { acceptConnections(from: webSocketListener, transport: .webSocket) }
        case Self.signalToken:
            // Only the doorbell: the commands were taken at the top of this iteration, and one
            // posted since is seen before the next sleep (`Mailbox.prepareToSleep`).
            mailbox.signal.drain()
        case Self.clusterToken:
            clusterEvent(event.events)
        case Self.lingeringTokenFlag...:
            drainLingeringSocket(Int32(truncatingIfNeeded: token & ~Self.lingeringTokenFlag))
        default:
            let slot = Int(token)
            guard let connection = connections[slot] else { return }
            if event.events & (gs_EPOLLIN | gs_EPOLLERR | gs_EPOLLHUP | gs_EPOLLRDHUP) != 0 {
                read(connection)
                // The read may have closed the connection or handed it to another worker, whose
                // thread may already be writing its fields. Only this worker's own table may be
                // asked whether it is still ours (see the rule in Worker+Handoff.swift); the
                // slot cannot be reused before the iteration ends (`slotsToFree`).
                guard connections[slot] === connection else { return }
            }
            if event.events & gs_EPOLLOUT != 0 {
                queueFlush(connection)
            }
        }
    }

    /// Whether `connection`, which this worker holds or closed this iteration (never one it
    /// handed off), is still open here.
    func isOwned(_ connection: Connection) -> Bool {
        assertOwner(of: connection)
        return connection.slot >= 0 && !connection.isClosed && connections[Int(connection.slot)] === connection
    }

    /// Runs every queued command in place (no allocation); a command may post more.
    private func processMailbox() {
        assertOnWorkerThread()
        assertNotInHook()
        mailbox.drain { command in
            switch command {
            case .adopt(let handoff): adopt(handoff.connection)
            case .roomDeleted(let roomID, let generation): markDeleted(roomID, generation: generation)
            case .stop: running = false
            case .failForTesting: breakEventLoopForTesting()
            case .serverBroadcast(let roomID, let generation, let data): broadcastFromServer(data, roomID: roomID, generation: generation)
            case .toClient(let command): perform(command)
            }
        }
        retryDeferredClientActions()
    }

    // MARK: Connection table

    /// Gives the connection a slot and registers it for reading.
    func register(_ connection: Connection) -> Bool {
        assertOnWorkerThread()
        assertNotInHook()
        #if DEBUG
        connection.owner = ObjectIdentifier(self)  // this worker holds it, even if registering fails
        #endif
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
        connection.record.owner.store(index, ordering: .releasing)
        return true
    }

    /// Takes the connection out of this worker's table (its socket stays open).
    func unregister(_ connection: Connection) {
        assertOwner(of: connection)
        assertNotInHook()
        let slot = connection.slot
        guard slot >= 0 else { return }
        connections[Int(slot)] = nil
        slotsToFree.append(slot)
        connection.slot = -1
        connection.timerToken &+= 1  // cancels its wheel entry
    }

    // MARK: Timers

    func scheduleTimer(_ connection: Connection) {
        connection.timerToken = nextTimerToken
        nextTimerToken &+= 1
        var deadline = min(connection.nextPingAt, connection.lastFrameAt + idleTimeout)
        if let session = connection.webSocket, session.phase != .open {
            deadline = session.handshakeDeadline
        }
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
        if let session = connection.webSocket, session.phase != .open {
            // Not a client yet (or answering a plain request): only the handshake deadline.
            if now >= session.handshakeDeadline {
                if session.phase == .handshaking { statistics[.webSocketHandshakesRefused] += 1 }
                close(connection, reason: .idleTimeout)
            } else {
                scheduleTimer(connection)
            }
            return
        }
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
        connection.outbox.releaseSpareStorage()
        scheduleTimer(connection)
    }

}
