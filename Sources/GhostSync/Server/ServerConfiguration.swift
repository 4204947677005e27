/// Every option of a `ShardedServer`, with the original ghost-sync's defaults.
public struct ServerConfiguration: Sendable {
    /// Listen address, `HOST:PORT` (port 0 picks a free port; see `ServerHandle.localAddress`).
    public var bindAddress = "0.0.0.0:7777"
    /// Most concurrent connections; the next one is closed at once.
    public var maxClients = 1024
    /// Largest frame payload accepted from a client, in bytes (at most `maxPayloadLimit`).
    /// The server's own frames are at most 16 bytes larger (a relayed Broadcast adds the
    /// sender's ID): give clients the same value as their `maxPayload`.
    public var maxPayload = 64 * 1024
    /// A client that sends no complete frame for this long is disconnected.
    public var idleTimeout: Duration = .seconds(31)
    /// How often the server pings each client; also the deadline for its Pong.
    public var pingInterval: Duration = .seconds(13)
    /// Most frames queued for one client; a frame for a full queue is dropped.
    public var channelCapacity = 1024
    /// Policy hooks.
    public var handler: any ServerHandler = NoopHandler()
    /// Worker threads; nil means one per CPU in the process's affinity mask (or per `cpus` entry).
    public var workers: Int?
    /// CPUs to pin workers to, in order (worker i gets `cpus[i % cpus.count]`); nil means the
    /// affinity mask.
    public var cpus: [Int]?
    /// Pin each worker to its CPU.
    public var pinning = true
    /// Keep each worker's memory on its CPU's NUMA node (a no-op on single-node hosts).
    public var numaAware = true
    /// Opt-in write coalescing for tick-based games: queued frames are written at most once per
    /// interval instead of at the end of every loop iteration, so each write carries more
    /// frames. Zero (the default) sends at once.
    public var flushInterval: Duration = .zero
    /// Longest room ID a client may join, in UTF-8 bytes; longer joins get an `Error`.
    public var maxRoomIDLength = 256
    /// Most members a room may have; nil (the default) means no limit. Checked on the room's
    /// worker, where every join of the room completes, so concurrent joins from every shard
    /// cannot overshoot it; a join past it gets `Error("room full: ID")`.
    public var maxClientsPerRoom: Int?
    /// Most connections from one IP address at once; nil (the default) means no limit.
    public var maxConnectionsPerIP: Int?
    /// Most frames a connection may send per second; nil (the default) means no limit.
    /// A connection over it is closed with `DisconnectReason.rateLimited`.
    public var maxFramesPerSecond: Int?
    /// The WebSocket transport; nil (the default) means off.
    public var webSocket: WebSocketConfiguration?
    /// Rooms across relays over NATS; nil (the default) means a single relay that connects
    /// nowhere.
    public var cluster: ClusterConfiguration?

    public init() {}

    /// The largest `maxPayload` allowed: 4,294,967,279 bytes (`UInt32.max` − 16), so that every
    /// frame the server sends fits its 4-byte length prefix. The largest server frame a client
    /// payload of `maxPayload` bytes causes is a relayed Broadcast of `maxPayload + 16` bytes;
    /// Joined and Error frames that echo a room ID are no larger (their fixed part is at most
    /// 16 bytes more than the JoinRoom frame's).
    public static let maxPayloadLimit = WireSize.largestPayload - WireSize.relayOverhead

    func validated() throws(ServerError) -> ServerConfiguration {
        if maxClients < 1 { throw .invalidConfiguration("maxClients must be at least 1") }
        if maxPayload < 4 || maxPayload > Self.maxPayloadLimit { throw .invalidConfiguration("maxPayload must be 4...\(Self.maxPayloadLimit) bytes") }
        if channelCapacity < 1 || channelCapacity > 1 << 24 { throw .invalidConfiguration("channelCapacity must be 1...16777216 frames") }
        if idleTimeout <= .zero { throw .invalidConfiguration("idleTimeout must be positive") }
        if pingInterval <= .zero { throw .invalidConfiguration("pingInterval must be positive") }
        if let workers, workers < 1 || workers > 1024 { throw .invalidConfiguration("workers must be 1...1024") }
        if flushInterval < .zero || flushInterval > .seconds(1) { throw .invalidConfiguration("flushInterval must be 0...1 s") }
        if maxRoomIDLength < 1 { throw .invalidConfiguration("maxRoomIDLength must be at least 1") }
        if let maxClientsPerRoom, maxClientsPerRoom < 1 { throw .invalidConfiguration("maxClientsPerRoom must be at least 1") }
        if let maxConnectionsPerIP, maxConnectionsPerIP < 1 { throw .invalidConfiguration("maxConnectionsPerIP must be at least 1") }
        if let maxFramesPerSecond, maxFramesPerSecond < 1 { throw .invalidConfiguration("maxFramesPerSecond must be at least 1") }
        var validated = self
        validated.webSocket = try webSocket?.validated()
        validated.cluster = try cluster?.validated()
        return validated
    }
}
