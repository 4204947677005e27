import CGhostSyncShims
import Glibc

/// One NATS connection on an epoll loop (docs/cluster.md): a non-blocking socket, the NATS
/// parser, and a bounded queue of bytes to write. Each worker has one, and so has the registry
/// thread. It never blocks its thread: connecting, reading and writing all go through the loop,
/// and when the queue is full (NATS cannot keep up, or the link is down) publishes are dropped
/// and counted, never waited for.
///
/// The link registers its own socket with the loop (under `token`) and keeps EPOLLOUT
/// registered exactly while bytes wait; its owner routes the token's events to `receive`, calls
/// `flushAndWatch` once per loop iteration, and `drop`s the link when either reports a failure.
///
/// Thread confinement: created, used and closed by the thread that runs its loop.
final class ClusterLink {
    enum State: Equatable {
        /// No socket; the next attempt is due at `retryAt`.
        case disconnected
        /// `connect` in progress (EPOLLOUT tells when it is done).
        case connecting
        /// Connected; waiting for the server's INFO, then for the PONG that answers our CONNECT.
        case handshaking
        /// Ready: subscriptions and publishes flow.
        case connected
    }

    let node: ClusterNodeID
    let maxPendingBytes: Int
    private(set) var state = State.disconnected
    private(set) var fd: Int32 = -1
    var parser: NATSParser
    /// Bytes waiting to be written, oldest first; `written` of them are already out.
    private(set) var pending: [UInt8] = []
    private var written = 0
    /// Whether EPOLLOUT is registered.
    private var wantsWritable = false
    /// Servers to try, in order: the configured ones, then those the servers announce.
    private(set) var servers: [SocketAddress]
    private var nextServer = 0
    /// When the next connection attempt may start (backoff after a failure).
    var retryAt: Int64 = 0
    private var backoff: Int64 = 0
    /// Our own PINGs without a PONG yet (a hung server is left after two).
    var pingsOutstanding = 0
    /// The largest payload the server takes (from its INFO).
    private(set) var maxPayload = 1 << 20
    private var nextSubscriptionID: UInt64 = 1

    /// What the connection is for, in its CONNECT name (`ghost-sync eu-1 registry`).
    let role: String?
    /// The loop the socket is on, and the token its events carry.
    private let epoll: Epoll
    private let token: UInt64

    init(node: ClusterNodeID, servers: [SocketAddress], maxPendingBytes: Int, role: String? = nil, epoll: Epoll, token: UInt64) {
        self.node = node
        self.role = role
        self.epoll = epoll
        self.token = token
        self.servers = servers
        self.maxPendingBytes = maxPendingBytes
        self.parser = NATSParser(maxPayload: 64 << 20)
    }

    var isConnected: Bool { state == .connected }
    var hasPendingOutput: Bool { written < pending.count }

    func makeSubscriptionID() -> UInt64 {
        defer { nextSubscriptionID += 1 }
        return nextSubscriptionID
    }

    // MARK: Connecting

    /// Starts the next connection attempt when one is due: the socket joins the loop, watched
    /// for the end of the connect. A socket that cannot be made schedules the next attempt.
    func connectIfDue(now: Int64) {
        guard state == .disconnected, now >= retryAt else { return }
        guard startConnecting(now: now) else { return drop(now: now) }
        do {
            try epoll.add(fd, events: gs_EPOLLIN | gs_EPOLLOUT | gs_EPOLLRDHUP, token: token)
            wantsWritable = true
        } catch {
            drop(now: now)
        }
    }

    /// Starts a non-blocking connect to the next server; false when the socket could not even
    /// be made.
    private func startConnecting(now: Int64) -> Bool {
        let server = servers[nextServer % servers.count]
        nextServer += 1
        let socketFD = socket(server.family, gs_SOCK_STREAM | gs_SOCK_NONBLOCK | gs_SOCK_CLOEXEC, 0)
        guard socketFD >= 0 else { return false }
        let started = server.withSockAddr { Glibc.connect(socketFD, $0, $1) }
        if started != 0 && errno != EINPROGRESS {
            Glibc.close(socketFD)
            return false
        }
        ClientSocket.configure(socketFD)
        fd = socketFD
        state = .connecting
        parser = NATSParser(maxPayload: 64 << 20)
        pending.removeAll(keepingCapacity: true)
        written = 0
        pingsOutstanding = 0
        return true
    }

    /// The connect finished (EPOLLOUT): did it succeed?
    private func finishConnecting() -> Bool {
        var error: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        guard getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length) == 0, error == 0 else { return false }
        state = .handshaking
        return true
    }

    /// The server's INFO: answer with CONNECT and a PING (its PONG means ready), and learn the
    /// other servers of its cluster.
    func receivedInfo(_ info: NATSServerInfo) {
        maxPayload = info.maxPayload
        for url in info.connectURLs ?? [] {
            if let address = try? ClusterConfiguration.address(of: url), !servers.contains(address) {
                servers.append(address)
            }
        }
        guard state == .handshaking else { return }
        try? NATSCommand.connect(name: "ghost-sync \(node.name)" + (role.map { " \($0)" } ?? ""), echo: false, headers: true, noResponders: true, into: &pending)
        NATSCommand.ping(into: &pending)
    }

    /// The PONG to our CONNECT's PING: the connection is ready.
    func becameReady() {
        state = .connected
        backoff = 0
    }

    /// Takes the socket off the loop, closes it and schedules the next attempt (100 ms,
    /// doubling to 2 s).
    func drop(now: Int64) {
        shutDown()
        wantsWritable = false
        pending.removeAll(keepingCapacity: true)
        written = 0
        backoff = backoff == 0 ? 100 : min(backoff * 2, 2000)
        retryAt = now + backoff
    }

    /// For good: off the loop and closed.
    func shutDown() {
        if fd >= 0 { epoll.remove(fd) }
        close()
    }

    /// Closed without touching the loop (its epoll instance may already be gone).
    func close() {
        if fd >= 0 { Glibc.close(fd) }
        fd = -1
        state = .disconnected
    }

    // MARK: Input

    /// What an event on the socket brought.
    enum ReceiveOutcome {
        /// Everything read was parsed and handed out (`bytes` of it; the link may have been
        /// dropped by a handler meanwhile).
        case received(bytes: Int)
        /// The link is broken, for this reason: the caller drops it.
        case failed(String)
    }

    /// An event on the link's socket: completes a connect, then reads what arrived into
    /// `buffer` (at most `maxReads` reads, so one busy link cannot hold up its loop) and hands
    /// every parsed message to `handle`. EPOLLOUT is left to the caller, which flushes anyway.
    func receive(
        events: UInt32,
        using buffer: UnsafeMutableRawBufferPointer,
        maxReads: Int,
        _ handle: (NATSServerMessage) -> Void
    ) -> ReceiveOutcome {
        if state == .connecting {
            guard events & (gs_EPOLLOUT | gs_EPOLLERR | gs_EPOLLHUP) != 0 else { return .received(bytes: 0) }
            guard finishConnecting() else { return .failed("connect failed") }
        }
        guard events & (gs_EPOLLIN | gs_EPOLLERR | gs_EPOLLHUP | gs_EPOLLRDHUP) != 0 else { return .received(bytes: 0) }
        var total = 0
        for _ in 0..<maxReads {
            guard fd >= 0 else { break }  // a handler gave up on the link
            let result: Syscall.IOResult
            do {
                result = try Syscall.read(fd, into: buffer)
            } catch {
                return .failed("read: \(error)")
            }
            switch result {
            case .wouldBlock:
                return .received(bytes: total)
            case .endOfFile:
                return .failed("the NATS server closed the connection")
            case .transferred(let count):
                total += count
                do {
                    try parser.feed(UnsafeRawBufferPointer(rebasing: buffer[0..<count]), handle)
                } catch {
                    return .failed("NATS protocol: \(error)")
                }
                if count < buffer.count { return .received(bytes: total) }
            }
        }
        return .received(bytes: total)
    }

    // MARK: Output

    /// Room for `bytes` more in the queue?
    func hasRoom(for bytes: Int) -> Bool {
        pending.count - written + bytes <= maxPendingBytes
    }

    /// Appends with `body`, unless the queue is full; false when dropped.
    @inline(__always)
    func enqueue(reserving bytes: Int, _ body: (inout [UInt8]) -> Void) -> Bool {
        guard hasRoom(for: bytes) else { return false }
        body(&pending)
        return true
    }

    /// Control traffic (SUB, UNSUB, PONG, CONNECT) is queued whatever the bound: it is small and
    /// the link is useless without it.
    func enqueueControl(_ body: (inout [UInt8]) -> Void) {
        body(&pending)
    }

    /// Writes what the socket takes and keeps EPOLLOUT registered exactly while bytes still
    /// wait. False on a write error (the caller drops the link). Nothing to do while there is
    /// no socket or the connect is still in progress.
    func flushAndWatch() -> Bool {
        guard fd >= 0, state != .connecting else { return true }
        guard writePending() else { return false }
        if hasPendingOutput != wantsWritable {
            wantsWritable = hasPendingOutput
            try? epoll.modify(fd, events: gs_EPOLLIN | gs_EPOLLRDHUP | (wantsWritable ? gs_EPOLLOUT : 0), token: token)
        }
        return true
    }

    /// Writes what the socket takes. False on a write error.
    private func writePending() -> Bool {
        while written < pending.count {
            let result = pending.withUnsafeBytes { raw in
                Result { () throws(SystemError) -> Syscall.IOResult in
                    try Syscall.send(fd, UnsafeRawBufferPointer(rebasing: raw[written...]))
                }
            }
            guard case .success(let outcome) = result else { return false }
            guard case .transferred(let count) = outcome else { break }
            written += count
        }
        if written == pending.count {
            pending.removeAll(keepingCapacity: pending.capacity <= 1 << 20)
            written = 0
        } else if written > 1 << 20 {
            pending.removeFirst(written)
            written = 0
        }
        return true
    }
}
