import CGhostSyncShims
import GhostSync
import Glibc
import Histogram
import Synchronization

/// State every thread of a run shares: readiness, the timeline, closed-loop credits.
final class RunState: Sendable {
    let ready = Atomic<Int>(0)
    /// When sending starts (warm-up), CLOCK_MONOTONIC ns; 0 until every client is ready.
    let start = Atomic<UInt64>(0)
    let stop = Atomic<Bool>(false)
    let failure = Locked<String?>(nil)
    /// Closed loop: sends each client may make now.
    let credits: [Credit]
    /// Progress counters for the live line (relaxed; exact totals come from the threads).
    let deliveredSoFar = Atomic<Int>(0)
    /// Each thread's latest p99 latency (µs), refreshed about once a second, for the live line.
    let p99SoFar: [Credit]
    /// CPU seconds over the measured window: the servers' (if their PIDs were given: the sum,
    /// and each in the order given) and ours.
    let cpuWindow = Locked<(server: Double?, each: [Double], generator: Double?)>((nil, [], nil))

    final class Credit: Sendable {
        let value: Atomic<Int>
        init(_ initial: Int) { value = Atomic(initial) }
    }

    init(clients: Int, window: Int, threads: Int) {
        credits = (0..<clients).map { _ in Credit(window) }
        p99SoFar = (0..<threads).map { _ in Credit(0) }
    }

    func fail(_ message: String) {
        failure.withLock { if $0 == nil { $0 = message } }
        stop.store(true, ordering: .relaxed)
    }
}

/// What one thread counted.
struct ThreadTally {
    var sent = 0
    var expected = 0
    var delivered = 0
    var duplicated = 0
    var reordered = 0
    var latency = ThreadTally.histogram()
    /// With several relays: the deliveries whose sender and receiver are on the same relay and
    /// on different ones, and their latencies (nil with one relay).
    var sameRelay: RelaySplit?
    var crossRelay: RelaySplit?

    struct RelaySplit {
        var delivered = 0
        var latency = ThreadTally.histogram()

        mutating func record(_ microseconds: UInt64) {
            delivered += 1
            latency.record(microseconds)
        }

        mutating func add(_ other: RelaySplit) {
            delivered += other.delivered
            latency.add(other.latency)
        }
    }

    static func histogram() -> Histogram<UInt64> {
        Histogram<UInt64>(highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: .three)
    }

    init(splitByRelay: Bool = false) {
        if splitByRelay {
            sameRelay = RelaySplit()
            crossRelay = RelaySplit()
        }
    }

    mutating func add(_ other: ThreadTally) {
        sent += other.sent
        expected += other.expected
        delivered += other.delivered
        duplicated += other.duplicated
        reordered += other.reordered
        latency.add(other.latency)
        if let same = other.sameRelay { sameRelay = sameRelay ?? RelaySplit(); sameRelay!.add(same) }
        if let cross = other.crossRelay { crossRelay = crossRelay ?? RelaySplit(); crossRelay!.add(cross) }
    }
}

/// One load-generator thread: an epoll loop over its share of the clients.
final class BenchThread {
    let configuration: BenchConfiguration
    let wire: RelayWire
    let state: RunState
    let epoll: Epoll
    /// This thread's number (its slot in `RunState.p99SoFar`).
    let number: Int
    var connections: [BenchConnection] = []
    var tally: ThreadTally
    /// With several relays: the relay of every client (by client index), to tell a
    /// cross-relay delivery from a same-relay one; empty with one relay.
    private let relayOfClient: [Int]
    private var schedule: [Int] = []  // connection positions, ordered by nextSendAt
    private var scheduleHead = 0
    /// Connections given a message by the current `sendDue` (kept to reuse its storage).
    private var touched: [BenchConnection] = []
    private let interval: UInt64
    private let scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: 256 * 1024, alignment: 16)
    private let payload: UnsafeMutableRawBufferPointer
    private var replies: [UInt8] = []

    init(configuration: BenchConfiguration, state: RunState, number: Int) throws(SystemError) {
        self.number = number
        self.configuration = configuration
        self.wire = RelayWire(configuration.target, transport: configuration.transport)
        self.state = state
        self.epoll = try Epoll()
        self.interval = UInt64(1_000_000_000 / max(configuration.rate, 0.001))
        self.payload = .allocate(byteCount: configuration.payload, alignment: 8)
        payload.initializeMemory(as: UInt8.self, repeating: 0x5a)
        let split = configuration.clientAddresses.count > 1
        self.tally = ThreadTally(splitByRelay: split)
        self.relayOfClient = split ? (0..<configuration.clients).map(configuration.relay(of:)) : []
    }

    deinit {
        for connection in connections { close(connection.fd) }
        epoll.close()
        scratch.deallocate()
        payload.deallocate()
    }

    /// Opens the client's socket (blocking connect), then makes it non-blocking and joins (over
    /// WebSocket: sends the upgrade request, and joins once `receive` has checked the answer).
    func connect(client: Int, to remote: SocketAddress, host: String) throws(BenchError) {
        let fd = socket(remote.family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw BenchError("socket: \(String(cString: strerror(errno))) (raise the descriptor limit?)") }
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        // Past ~20,000 connections one source address runs out of ephemeral ports: spread the
        // sources over 127.0.0.x (loopback only).
        if !remote.isIPv6, remote.isLoopback, client >= 20_000 {
            let source = try? SocketAddress(parsing: "127.0.0.\(2 + client / 20_000):0")
            _ = source?.withSockAddr { bind(fd, $0, $1) }
        }
        guard remote.withSockAddr({ Glibc.connect(fd, $0, $1) }) == 0 else {
            let code = errno
            close(fd)
            throw BenchError("cannot connect client \(client) to \(remote): \(String(cString: strerror(code)))")
        }
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        let room = configuration.room(of: client)
        let webSocket = configuration.transport == .webSocket
        let connection = BenchConnection(
            index: client, room: room, roomName: configuration.roomName(room), fd: fd, position: connections.count,
            maskingKey: webSocket ? UInt32.random(in: 0...UInt32.max) : 0, relay: configuration.relay(of: client), host: host)
        do {
            try epoll.add(fd, events: gs_EPOLLIN, token: UInt64(connections.count))
        } catch {
            close(fd)
            throw BenchError("epoll_ctl: \(error)")
        }
        connections.append(connection)
        if webSocket {
            let upgrade = WebSocketUpgrade()
            connection.upgrade = upgrade
            connection.output += upgrade.request(host: connection.host)
        } else {
            connection.output += wire.handshake(room: connection.roomName)
        }
        flush(connection)
    }

    /// WebSocket: checks the relay's answer to the upgrade at the front of `connection.input`,
    /// then joins. Returns false while the answer is incomplete or when it failed the
    /// connection (a failed handshake fails the run, like any client error here).
    private func completeUpgrade(_ connection: BenchConnection, _ upgrade: WebSocketUpgrade) -> Bool {
        switch connection.input.withUnsafeBytes({ upgrade.check($0) }) {
        case .incomplete:
            return false
        case .failed(let reason):
            state.fail("client \(connection.index): WebSocket handshake with \(connection.host) failed: \(reason)")
            connection.input.removeAll()
            return false
        case .upgraded(let headBytes):
            connection.input.removeFirst(headBytes)
            connection.upgrade = nil
            connection.output += wire.handshake(room: connection.roomName, maskingKey: connection.maskingKey)
            flush(connection)
            return true
        }
    }

    /// The loop: join, then (once the run's start time is set) send on schedule and account
    /// for every delivery, until the drain period ends.
    func run() {
        let events = UnsafeMutablePointer<epoll_event>.allocate(capacity: 256)
        defer { events.deallocate() }
        var started = false
        var measureStart: UInt64 = 0
        var measureEnd: UInt64 = 0
        var drainEnd: UInt64 = .max
        var nextProgress: UInt64 = 0
        while !state.stop.load(ordering: .relaxed) {
            let now = MonotonicClock.nowNanoseconds()
            if now >= nextProgress {
                nextProgress = now + 1_000_000_000
                if tally.latency.totalCount > 0 {
                    state.p99SoFar[number].value.store(Int(tally.latency.valueAtPercentile(99)), ordering: .relaxed)
                }
            }
            if !started, case let start = state.start.load(ordering: .acquiring), start != 0 {
                started = true
                measureStart = start + UInt64(configuration.warmup.nanoseconds)
                measureEnd = measureStart + UInt64(configuration.duration.nanoseconds)
                drainEnd = measureEnd + UInt64(configuration.drain.nanoseconds)
                prepareSchedule(start: start)
            }
            if now >= drainEnd { break }
            var timeout: Int32 = 10
            if started && now < measureEnd {
                if configuration.mode == .open {
                    sendDue(now: now, measureStart: measureStart, measureEnd: measureEnd)
                    if scheduleHead < schedule.count {
                        let next = connections[schedule[scheduleHead]].nextSendAt
                        timeout = next > now ? Int32(min(10, (next - now) / 1_000_000)) : 0
                    }
                } else {
                    sendOnCredit(now: now, measureStart: measureStart, measureEnd: measureEnd)
                    timeout = 1
                }
            }
            guard let count = try? Syscall.epollWait(epoll.fd, events, capacity: 256, timeoutMilliseconds: timeout) else { break }
            for index in 0..<count {
                let connection = connections[Int(events[index].data.u64)]
                if events[index].events & gs_EPOLLOUT != 0 { flush(connection) }
                if events[index].events & (gs_EPOLLIN | gs_EPOLLHUP | gs_EPOLLERR) != 0 {
                    receive(connection, measureStart: started ? measureStart : .max, measureEnd: measureEnd)
                }
            }
        }
    }

    private func prepareSchedule(start: UInt64) {
        let spread = interval / UInt64(max(1, configuration.clients))
        for (position, connection) in connections.enumerated() {
            connection.nextSendAt = start + UInt64(connection.index) * spread
            schedule.append(position)
        }
        schedule.sort { connections[$0].nextSendAt < connections[$1].nextSendAt }
    }

    private func sendDue(now: UInt64, measureStart: UInt64, measureEnd: UInt64) {
        touched.removeAll(keepingCapacity: true)
        // Every client has the same interval, so re-queueing at the back keeps the order.
        var budget = connections.count * 4
        while budget > 0, scheduleHead < schedule.count {
            let position = schedule[scheduleHead]
            let connection = connections[position]
            guard connection.nextSendAt <= now else { break }
            scheduleHead += 1
            schedule.append(position)
            connection.nextSendAt += interval
            enqueueMessage(connection, now: now, measureStart: measureStart, measureEnd: measureEnd)
            touched.append(connection)
            budget -= 1
        }
        if scheduleHead > 4096 && scheduleHead * 2 > schedule.count {
            schedule.removeFirst(scheduleHead)
            scheduleHead = 0
        }
        for connection in touched where !connection.output.isEmpty { flush(connection) }
    }

    private func sendOnCredit(now: UInt64, measureStart: UInt64, measureEnd: UInt64) {
        for connection in connections {
            // All credits owed so far in one atomic, not a load and a subtract per message.
            let owed = state.credits[connection.index].value.exchange(0, ordering: .relaxed)
            for _ in 0..<owed {
                enqueueMessage(connection, now: now, measureStart: measureStart, measureEnd: measureEnd)
            }
            if !connection.output.isEmpty { flush(connection) }
        }
    }

    private func enqueueMessage(_ connection: BenchConnection, now: UInt64, measureStart: UInt64, measureEnd: UInt64) {
        connection.sequence += 1
        BenchPayload.write(sender: connection.index, sequence: connection.sequence, sentAt: now, into: payload)
        wire.appendPublish(room: connection.roomName, payload: UnsafeRawBufferPointer(payload), maskingKey: connection.maskingKey, to: &connection.output)
        if now >= measureStart && now < measureEnd {
            tally.sent += 1
            tally.expected += configuration.members(ofRoom: connection.room) - 1
        }
    }

    private func receive(_ connection: BenchConnection, measureStart: UInt64, measureEnd: UInt64) {
        for _ in 0..<4 {
            let count = read(connection.fd, scratch.baseAddress, scratch.count)
            if count == 0 || (count < 0 && errno != EAGAIN && errno != EINTR) {
                state.fail("client \(connection.index): the relay closed the connection")
                return
            }
            if count < 0 { return }
            connection.input += UnsafeRawBufferPointer(rebasing: scratch[0..<count])
            // A TCP run stops at the first test (a `let`): no per-read exclusivity check.
            if configuration.transport == .webSocket, let upgrade = connection.upgrade, !completeUpgrade(connection, upgrade) { return }
            let receivedAt = MonotonicClock.nowNanoseconds()
            let deliveredBefore = tally.delivered
            // The shared progress counter moves once per read, not once per delivery.
            defer {
                if tally.delivered > deliveredBefore {
                    state.deliveredSoFar.add(tally.delivered - deliveredBefore, ordering: .relaxed)
                }
            }
            let consumed = connection.input.withUnsafeBytes { bytes in
                wire.parse(bytes, maskingKey: connection.maskingKey, replies: &replies) { event in
                    switch event {
                    case .ready:
                        if !connection.isReady {
                            connection.isReady = true
                            state.ready.add(1, ordering: .relaxed)
                        }
                    case .message(let data):
                        account(data, at: connection, receivedAt: receivedAt, measureStart: measureStart, measureEnd: measureEnd)
                    case .failure(let text):
                        state.fail("client \(connection.index): \(text)")
                    }
                }
            }
            connection.input.removeFirst(consumed)
            if !replies.isEmpty {
                connection.output += replies
                replies.removeAll(keepingCapacity: true)
                flush(connection)
            }
            if count < scratch.count { return }
        }
    }

    private func account(_ data: UnsafeRawBufferPointer, at receiver: BenchConnection, receivedAt: UInt64, measureStart: UInt64, measureEnd: UInt64) {
        guard let (sender, sequence, sentAt) = BenchPayload.read(data), sender != receiver.index else { return }
        let highest = receiver.highestSeen[sender] ?? 0
        if sequence == highest {
            if sentAt >= measureStart && sentAt < measureEnd { tally.duplicated += 1 }
            return
        }
        if sequence > highest {
            receiver.highestSeen[sender] = sequence
        } else if sentAt >= measureStart && sentAt < measureEnd {
            tally.reordered += 1
        }
        if configuration.mode == .closed, receiver.index == designatedReceiver(of: sender) {
            state.credits[sender].value.add(1, ordering: .relaxed)
        }
        guard sentAt >= measureStart && sentAt < measureEnd else { return }
        tally.delivered += 1
        let microseconds = receivedAt > sentAt ? (receivedAt - sentAt) / 1000 : 0
        tally.latency.record(microseconds)
        // Several relays: one array read and a comparison more (the histograms exist already).
        if !relayOfClient.isEmpty, sender < relayOfClient.count {
            if relayOfClient[sender] == receiver.relay {
                tally.sameRelay!.record(microseconds)
            } else {
                tally.crossRelay!.record(microseconds)
            }
        }
    }

    /// Closed loop: the member after `sender` in its room confirms its messages.
    func designatedReceiver(of sender: Int) -> Int {
        let next = sender + configuration.rooms
        return next < configuration.clients ? next : sender % configuration.rooms
    }

    private func flush(_ connection: BenchConnection) {
        while !connection.output.isEmpty {
            let count = connection.output.withUnsafeBytes { send(connection.fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if count > 0 {
                connection.output.removeFirst(count)
                continue
            }
            if count < 0 && (errno == EAGAIN || errno == EINTR) { break }
            state.fail("client \(connection.index): send failed: \(String(cString: strerror(errno)))")
            return
        }
        let wants = !connection.output.isEmpty
        if wants != connection.wantsWritable {
            connection.wantsWritable = wants
            try? epoll.modify(connection.fd, events: gs_EPOLLIN | (wants ? gs_EPOLLOUT : 0), token: UInt64(connection.position))
        }
    }
}

extension Duration {
    var nanoseconds: Int64 {
        components.seconds * 1_000_000_000 + components.attoseconds / 1_000_000_000
    }
}
