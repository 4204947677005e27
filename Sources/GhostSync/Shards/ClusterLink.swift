import CGhostSyncShims
import Glibc

/// A worker's own NATS connection (docs/cluster.md): a non-blocking socket on the worker's epoll
/// loop, the NATS parser, and a bounded queue of bytes to write. It never blocks the worker:
/// connecting, reading and writing all go through the loop, and when the queue is full (NATS
/// cannot keep up, or the link is down) publishes are dropped and counted, never waited for.
///
/// Thread confinement: created, used and closed by its worker only.
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
    var wantsWritable = false
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

    init(node: ClusterNodeID, servers: [SocketAddress], maxPendingBytes: Int, role: String? = nil) {
        self.node = node
        self.role = role
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

    /// Starts a non-blocking connect to the next server; false when the socket could not even
    /// be made (the caller retries later).
    func startConnecting(now: Int64) -> Bool {
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
    func finishConnecting() -> Bool {
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

    /// Drops the socket and schedules the next attempt (100 ms, doubling to 2 s).
    func disconnect(now: Int64) {
        if fd >= 0 { Glibc.close(fd) }
        fd = -1
        state = .disconnected
        wantsWritable = false
        pending.removeAll(keepingCapacity: true)
        written = 0
        backoff = backoff == 0 ? 100 : min(backoff * 2, 2000)
        retryAt = now + backoff
    }

    func close() {
        if fd >= 0 { Glibc.close(fd) }
        fd = -1
        state = .disconnected
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

    /// Writes what the socket takes. Returns false on a write error (the caller disconnects).
    func flush() -> Bool {
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
