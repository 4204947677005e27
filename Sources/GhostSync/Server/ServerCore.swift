import Synchronization

/// The state every worker and every `ServerHandle` share. All of it is safe to touch from any
/// thread; none of it is on the per-message relay path except the immutable configuration.
final class ServerCore: Sendable {
    let configuration: ServerConfiguration
    let handler: any ServerHandler
    let topology: ServerTopology
    let localAddress: SocketAddress
    /// Where the WebSocket listeners are bound, when the transport is on.
    let webSocketAddress: SocketAddress?
    /// This relay in the cluster, when there is one.
    let clusterNode: ClusterNodeID?
    /// Each worker's view of the cluster, refreshed once per heartbeat interval.
    let clusterViews: [Locked<ClusterView?>]
    /// The cluster-wide room registry, when there is a cluster with `roomRegistry` on.
    let registry: RoomRegistry?
    let rooms: RoomDirectory
    let clients = ClientDirectory()
    let mailboxes: [Mailbox]
    /// Each worker's published counters, by worker index.
    let statistics: [PublishedStatistics]
    /// Open client connections across all workers (checked against maxClients on accept).
    let connectionCount = Atomic<Int>(0)
    /// Open connections per client IP, kept only when `maxConnectionsPerIP` is set (accept path).
    let connectionsPerIP = Locked<[String: Int]>([:])
    /// Workers whose loop failed, by index (see `WorkerFailure`). Read on every cross-shard
    /// join request only through `isWorkerFailed`, which takes no lock while none has failed.
    private let failures = Locked<[Int: WorkerFailure]>([:])
    private let anyWorkerFailed = Atomic<Bool>(false)
    let idleTimeoutMilliseconds: Int64
    let pingIntervalMilliseconds: Int64

    init(
        configuration: ServerConfiguration, topology: ServerTopology, localAddress: SocketAddress,
        webSocketAddress: SocketAddress? = nil, mailboxes: [Mailbox]
    ) throws(SystemError) {
        self.configuration = configuration
        self.handler = configuration.handler
        self.topology = topology
        self.localAddress = localAddress
        self.webSocketAddress = webSocketAddress
        self.clusterNode = configuration.cluster.map { ClusterNodeID(name: $0.nodeName, incarnation: UInt64.random(in: 1...UInt64.max)) }
        self.clusterViews = mailboxes.map { _ in Locked(nil) }
        if let cluster = configuration.cluster, cluster.roomRegistry, let node = clusterNode {
            self.registry = try RoomRegistry(configuration: cluster, node: node)
        } else {
            self.registry = nil
        }
        self.rooms = RoomDirectory(shardMap: ShardMap(workerCount: topology.workers.count))
        self.mailboxes = mailboxes
        self.statistics = mailboxes.map { _ in PublishedStatistics() }
        self.idleTimeoutMilliseconds = configuration.idleTimeout.wholeMilliseconds
        self.pingIntervalMilliseconds = configuration.pingInterval.wholeMilliseconds
    }

    var shardMap: ShardMap { rooms.shardMap }

    func markFailed(_ failure: WorkerFailure) {
        failures.withLock { $0[failure.worker] = failure }
        anyWorkerFailed.store(true, ordering: .releasing)
    }

    func isWorkerFailed(_ index: Int) -> Bool {
        guard anyWorkerFailed.load(ordering: .acquiring) else { return false }
        return failures.withLock { $0[index] != nil }
    }

    var failedWorkers: [WorkerFailure] {
        failures.withLock { $0.values.sorted { $0.worker < $1.worker } }
    }

    /// Counts a new connection from `address`; false if its IP is at `maxConnectionsPerIP`.
    func admitIP(_ address: SocketAddress) -> Bool {
        guard let limit = configuration.maxConnectionsPerIP else { return true }
        return connectionsPerIP.withLock { counts in
            let current = counts[address.host, default: 0]
            guard current < limit else { return false }
            counts[address.host] = current + 1
            return true
        }
    }

    /// Ends a connection that was in a mailbox when its target worker stopped (shutdown landing
    /// in a cross-shard join): it already left its room (so `onLeave` ran) on the worker that
    /// handed it off. Closes it and releases everything `Worker.close` would, so every accepted
    /// connection gets exactly one `onDisconnect` and the counts return to zero. Runs on the
    /// thread that closes the mailbox (`ServerHandle.shutdown`), after every worker stopped.
    func endStranded(_ connection: Connection) {
        guard connection.closeStranded() else { return }
        forget(connection.record)
        if let roomID = connection.pendingJoin {
            handler.onJoinFailed(clientID: connection.id, roomID: roomID, reason: .roomUnavailable)
        }
        handler.onDisconnect(clientID: connection.id, address: connection.address, reason: .connectionClosed)
    }

    /// Takes back everything a client held across threads once its connection has ended:
    /// routing (`owner`), the directory entry, the per-IP slot and the count. The one place
    /// both ways a connection ends (`Worker.close`, `endStranded`) release it.
    func forget(_ client: ClientRecord) {
        client.owner.store(-1, ordering: .releasing)
        clients.remove(client.id)
        // The per-IP slot goes back before the count drops (and the drop is a release), so
        // whoever sees `clientCount` fall can reconnect from the same address at once.
        releaseIP(client.address)
        connectionCount.wrappingSubtract(1, ordering: .releasing)
    }

    func releaseIP(_ address: SocketAddress) {
        guard configuration.maxConnectionsPerIP != nil else { return }
        connectionsPerIP.withLock { counts in
            let remaining = counts[address.host, default: 1] - 1
            counts[address.host] = remaining > 0 ? remaining : nil
        }
    }
}
