import GhostSync

/// Which relay a load run drives.
public enum BenchTarget: String, Sendable, CaseIterable {
    /// A GhostSync (or original ghost-sync) relay: JoinRoom, Broadcast.
    case ghost
    /// Redis pub/sub over RESP3, one connection per client (SUBSCRIBE and PUBLISH on it).
    case redis
    /// NATS core, one connection per client, `echo` off (SUB and PUB on it).
    case nats
}

/// How GhostSync clients reach the relay.
public enum BenchTransport: String, Sendable, CaseIterable {
    /// The ghost-sync TCP framing (4-byte length prefix per message).
    case tcp
    /// RFC 6455 WebSocket, as browsers use it: an HTTP/1.1 upgrade offering `ghost-sync.v1`,
    /// then one masked binary message per ghost-sync payload (the relay's `--ws` port).
    case webSocket = "ws"
}

/// Open loop: every client sends at `rate` whatever happens. Closed loop: every client keeps
/// `window` messages in flight, sending the next when one of its own is delivered.
public enum BenchMode: String, Sendable, CaseIterable {
    case open
    case closed
}

/// One load scenario.
public struct BenchConfiguration: Sendable {
    public var target: BenchTarget = .ghost
    /// The relays' TCP addresses (`HOST:PORT`), usually one. With several (relays of one
    /// cluster), every room gets members on each: see `relay(of:)`.
    public var addresses = ["127.0.0.1:7777"]
    /// `.webSocket`: every client connects to one of `webSocketAddresses` instead of
    /// `addresses` (GhostSync only).
    public var transport: BenchTransport = .tcp
    /// The relays' WebSocket addresses (`ghost-sync relay --ws`), `HOST:PORT`; at least one
    /// with `.webSocket`, spread over as `addresses` are.
    public var webSocketAddresses: [String] = []
    public var clients = 100
    public var rooms = 10
    /// Messages per second per client (open loop).
    public var rate = 20.0
    /// Bytes per message (at least `BenchPayload.headerSize`).
    public var payload = 64
    public var duration: Duration = .seconds(10)
    public var warmup: Duration = .seconds(2)
    public var mode: BenchMode = .open
    /// Messages in flight per client (closed loop).
    public var window = 8
    /// Load-generator threads (each with its own epoll loop).
    public var threads = 1
    /// The PIDs of the processes that serve the run (the relay; with a cluster every relay
    /// and NATS server): their CPU time over the measured window is read from /proc and summed.
    public var serverPIDs: [Int32] = []
    /// NATS servers' monitoring endpoints (`nats-server -m`, `HOST:PORT`): their `/varz`
    /// `in_msgs` and `out_msgs` are read when the measured window opens and when it closes
    /// (summed over the servers), to count the NATS messages a cluster of relays uses per
    /// broadcast.
    public var natsMonitorAddresses: [String] = []
    /// A GhostSync relay's metrics endpoint (host:port): its per-worker counters are scraped
    /// before the clients connect and at the start and end of the measured window, and with
    /// `serverPID` (the first of `serverPIDs`) the CPU time of each worker thread (`ghost-wN`) is read over the window.
    public var metricsAddress: String? {
        get { metricsAddresses.first }
        set { metricsAddresses = newValue.map { [$0] } ?? [] }
    }
    /// The metrics endpoints of several relays (a cluster), the first being `metricsAddress`:
    /// each relay's counters, summed over its workers, are scraped when the window opens and
    /// when it closes (`BenchReport.relayCounters`).
    public var metricsAddresses: [String] = []
    /// Room names are `room-1` … `room-N` (what `ghost-sync relay --rooms N` creates).
    public var roomPrefix = "room-"
    /// How long to keep receiving after the last measured send, for in-flight messages.
    public var drain: Duration = .seconds(1)

    public init() {}

    public func validated() throws(BenchError) -> BenchConfiguration {
        if clients < 1 { throw BenchError("clients must be at least 1") }
        if rooms < 1 || rooms > clients { throw BenchError("rooms must be 1...clients") }
        if payload < BenchPayload.headerSize { throw BenchError("payload must be at least \(BenchPayload.headerSize) bytes (sender, sequence, send time)") }
        if mode == .open && rate <= 0 { throw BenchError("rate must be positive") }
        if mode == .closed && window < 1 { throw BenchError("window must be at least 1") }
        if threads < 1 || threads > 64 { throw BenchError("threads must be 1...64") }
        if duration <= .zero { throw BenchError("duration must be positive") }
        if addresses.isEmpty { throw BenchError("at least one relay address is needed") }
        if transport == .webSocket {
            if target != .ghost {
                throw BenchError("--transport ws is for --target ghost only: \(target.rawValue) is driven over its own TCP protocol (use --transport tcp)")
            }
            if webSocketAddresses.isEmpty {
                throw BenchError("--transport ws needs --ws-addr HOST:PORT, the relay's WebSocket address (its --ws)")
            }
            for address in webSocketAddresses {
                do { _ = try SocketAddress(parsing: address) } catch { throw BenchError("WebSocket address \(address): \(error.description)") }
            }
        }
        if clientAddresses.count > Self.maxRelays { throw BenchError("at most \(Self.maxRelays) relay addresses") }
        for metricsAddress in metricsAddresses {
            do { _ = try SocketAddress(parsing: metricsAddress) } catch { throw BenchError("metrics address \(metricsAddress): \(error.description)") }
        }
        for address in natsMonitorAddresses {
            do { _ = try SocketAddress(parsing: address) } catch { throw BenchError("NATS monitoring address \(address): \(error.description)") }
        }
        return self
    }

    static let maxRelays = 64

    /// The one relay address (the first of `addresses`); setting it makes it the only one.
    public var address: String {
        get { addresses.first ?? "" }
        set { addresses = [newValue] }
    }

    /// The one WebSocket address (the first of `webSocketAddresses`); setting it makes it the only one.
    public var webSocketAddress: String? {
        get { webSocketAddresses.first }
        set { webSocketAddresses = newValue.map { [$0] } ?? [] }
    }

    /// The one server PID (the first of `serverPIDs`); setting it makes it the only one.
    public var serverPID: Int32? {
        get { serverPIDs.first }
        set { serverPIDs = newValue.map { [$0] } ?? [] }
    }

    /// Where the clients connect: the relays' TCP or WebSocket addresses.
    var clientAddresses: [String] { transport == .webSocket ? webSocketAddresses : addresses }

    /// The first of them (the Host of the WebSocket upgrade with one relay, messages).
    var clientAddress: String { clientAddresses.first ?? address }

    func room(of client: Int) -> Int { client % rooms }

    /// Which of `clientAddresses` a client connects to. Members of a room alternate over the
    /// relays (the k-th member of its room goes to relay k mod N), so every room with at least
    /// N members has members on every relay, and the clients split evenly when every room's
    /// member count is a multiple of N. (Client i mod N would not do: with the rooms a multiple
    /// of N, as in 100 rooms over 2 relays, each room would sit on one relay.)
    func relay(of client: Int) -> Int {
        let relays = clientAddresses.count
        return relays <= 1 ? 0 : (client / rooms) % relays
    }

    func roomName(_ room: Int) -> String { "\(roomPrefix)\(room + 1)" }

    /// Members of each room (clients are dealt round-robin).
    func members(ofRoom room: Int) -> Int { clients / rooms + (room < clients % rooms ? 1 : 0) }
}

/// A configuration or run failure, with a message for the user.
public struct BenchError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// What each message carries, so receivers can account for it: sender index, sequence number,
/// send time (CLOCK_MONOTONIC nanoseconds), then padding to the payload size.
enum BenchPayload {
    static let headerSize = 4 + 8 + 8

    static func write(sender: Int, sequence: UInt64, sentAt: UInt64, into buffer: UnsafeMutableRawBufferPointer) {
        buffer.storeBytes(of: UInt32(sender).littleEndian, toByteOffset: 0, as: UInt32.self)
        buffer.storeBytes(of: sequence.littleEndian, toByteOffset: 4, as: UInt64.self)
        buffer.storeBytes(of: sentAt.littleEndian, toByteOffset: 12, as: UInt64.self)
    }

    static func read(_ bytes: UnsafeRawBufferPointer) -> (sender: Int, sequence: UInt64, sentAt: UInt64)? {
        guard bytes.count >= headerSize else { return nil }
        return (Int(UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: 0, as: UInt32.self))),
                UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: 4, as: UInt64.self)),
                UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: 12, as: UInt64.self)))
    }
}
