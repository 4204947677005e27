/// Rooms across relays (`ShardedServerBuilder.cluster(_:)`): every worker keeps its own NATS
/// connection and exchanges its rooms' traffic and presence with the other relays (nodes) of
/// the cluster. See docs/cluster.md.
public struct ClusterConfiguration: Sendable {
    /// NATS servers, `nats://HOST:PORT` (or `HOST:PORT`); a worker connects to the first that
    /// answers, and on losing it tries the others and those the servers announce.
    public var servers: [String]
    /// This relay's name in the cluster, unique among the nodes (`eu-1`).
    public var nodeName: String
    /// How often a node announces it is alive.
    public var heartbeatInterval: Duration = .seconds(1)
    /// A node not heard from for this many heartbeat intervals is dead: its members leave.
    public var missedHeartbeatsForDead = 3
    /// Most bytes waiting to be written to NATS per worker; publishes past it are dropped (and
    /// counted) rather than blocking the worker or growing without bound.
    public var maxPendingBytes = 8 << 20
    /// Whether rooms are cluster-wide, kept in a JetStream key-value bucket (the NATS servers
    /// need JetStream: `nats-server -js`). Off: every relay has its own rooms, and rooms of the
    /// same ID on several relays are shared (docs/cluster.md).
    public var roomRegistry = true
    /// The registry's bucket (`[A-Za-z0-9_-]+`); relays of one cluster must agree.
    public var registryBucket = "ghost_rooms"
    /// Copies of the bucket across the NATS cluster: 1, or 3 on a 3-server JetStream cluster
    /// so that the registry survives losing a server. Used by the relay that creates it.
    public var registryReplicas = 1
    /// How long `createRoom`, `deleteRoom`, `setRoomMeta` and cluster-wide member counts wait
    /// for the registry before giving up (`ServerError.clusterUnavailable`).
    public var registryTimeout: Duration = .seconds(5)
    /// How long `run()` waits for the registry to load before failing; the relay does not
    /// start without knowing the cluster's rooms.
    public var startupTimeout: Duration = .seconds(15)

    public init(servers: [String], nodeName: String) {
        self.servers = servers
        self.nodeName = nodeName
    }

    func validated() throws(ServerError) -> ClusterConfiguration {
        if servers.isEmpty { throw .invalidConfiguration("cluster.servers must not be empty") }
        if nodeName.isEmpty || nodeName.utf8.count > 64 { throw .invalidConfiguration("cluster.nodeName must be 1...64 bytes") }
        if heartbeatInterval < .milliseconds(10) || heartbeatInterval > .seconds(60) {
            throw .invalidConfiguration("cluster.heartbeatInterval must be 10 ms...60 s")
        }
        if missedHeartbeatsForDead < 2 { throw .invalidConfiguration("cluster.missedHeartbeatsForDead must be at least 2") }
        if maxPendingBytes < 64 << 10 { throw .invalidConfiguration("cluster.maxPendingBytes must be at least 64 KiB") }
        if !NATSSubject.isPlainName(registryBucket) { throw .invalidConfiguration("cluster.registryBucket must be [A-Za-z0-9_-]+") }
        if !(1...5).contains(registryReplicas) { throw .invalidConfiguration("cluster.registryReplicas must be 1...5") }
        if registryTimeout < .milliseconds(10) { throw .invalidConfiguration("cluster.registryTimeout must be at least 10 ms") }
        if startupTimeout < .milliseconds(100) { throw .invalidConfiguration("cluster.startupTimeout must be at least 100 ms") }
        for server in servers {
            _ = try ClusterConfiguration.address(of: server)
        }
        return self
    }

    /// `nats://host:port`, `host:port` → an address (the port defaults to 4222).
    static func address(of server: String) throws(ServerError) -> SocketAddress {
        var text = Substring(server)
        if text.hasPrefix("nats://") { text = text.dropFirst(7) }
        if !text.contains(":") || (text.hasPrefix("[") && text.hasSuffix("]")) { text += ":4222" }
        do { return try SocketAddress(parsing: String(text)) } catch { throw .invalidAddress(error) }
    }
}
