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
