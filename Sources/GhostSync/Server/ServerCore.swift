import Synchronization

/// The state every worker and every `ServerHandle` share. All of it is safe to touch from any
/// thread; none of it is on the per-message relay path except the immutable configuration.
final class ServerCore: Sendable {
    let configuration: ServerConfiguration
    let handler: any ServerHandler
    let topology: ServerTopology
    let localAddress: SocketAddress
    let rooms: RoomDirectory
    let clients = ClientDirectory()
    let mailboxes: [Mailbox]
    /// Each worker's published counters, by worker index.
    let statistics: [PublishedStatistics]
    /// Open client connections across all workers (checked against maxClients on accept).
    let connectionCount = Atomic<Int>(0)
    let idleTimeoutMilliseconds: Int64
    let pingIntervalMilliseconds: Int64

    init(configuration: ServerConfiguration, topology: ServerTopology, localAddress: SocketAddress, mailboxes: [Mailbox]) {
        self.configuration = configuration
        self.handler = configuration.handler
        self.topology = topology
        self.localAddress = localAddress
        self.rooms = RoomDirectory(shardMap: ShardMap(workerCount: topology.workers.count))
        self.mailboxes = mailboxes
        self.statistics = mailboxes.map { _ in PublishedStatistics() }
        self.idleTimeoutMilliseconds = configuration.idleTimeout.wholeMilliseconds
        self.pingIntervalMilliseconds = configuration.pingInterval.wholeMilliseconds
    }

    var shardMap: ShardMap { rooms.shardMap }
}
