import GhostSync
import Logging
import ServiceLifecycle

/// Everything the packaged relay runs: the server, its rooms, the control and metrics endpoints.
public struct RelayConfiguration: Sendable {
    public var server = ServerConfiguration()
    /// Rooms created at start.
    public var rooms: [String] = ["lobby", "deathmatch", "duel"]
    /// Control protocol address; nil turns it off.
    public var controlAddress: String? = "127.0.0.1:8888"
    /// Prometheus endpoint address; nil turns it off.
    public var metricsAddress: String? = "127.0.0.1:9777"

    public init() {}
}

/// The addresses the relay ended up bound to (the real ports when port 0 was asked).
public struct RelayAddresses: Sendable {
    public let relay: SocketAddress
    /// The WebSocket port (demo page and browser clients), when it is on.
    public let webSocket: SocketAddress?
    /// The NATS servers and this relay's name, in a cluster.
    public var cluster: (servers: [String], node: String)? = nil
    public let control: SocketAddress?
    public let metrics: SocketAddress?

    /// One machine-readable line, printed on stdout once everything listens.
    public var readyLine: String {
        "ghost-sync ready relay=\(relay) ws=\(webSocket.map(\.description) ?? "off") control=\(control.map(\.description) ?? "off") metrics=\(metrics.map(\.description) ?? "off")"
            + (cluster.map { " cluster=\($0.servers.joined(separator: ",")) node=\($0.node)" } ?? "")
    }
}

/// Errors of the operations endpoints.
public struct RelayError: Error, CustomStringConvertible {
    public let description: String
}

/// The packaged relay as a `Service`: a `ShardedServer` with a `LoggingHandler`, the rooms, and
/// the control and metrics endpoints on their own `ghost-ops` thread.
public struct RelayService: Service, CustomStringConvertible {
    public var description: String { "RelayService" }

    let configuration: RelayConfiguration
    let logger: Logger
    let version: String
    let onReady: @Sendable (RelayAddresses) -> Void

    public init(configuration: RelayConfiguration, logger: Logger, version: String, onReady: @escaping @Sendable (RelayAddresses) -> Void = { _ in }) {
        self.configuration = configuration
        self.logger = logger
        self.version = version
        self.onReady = onReady
    }

    public func run() async throws {
        var serverConfiguration = configuration.server
        serverConfiguration.handler = LoggingHandler(logger: logger)
        // The WebSocket port serves the demo page and the JavaScript client unless the
        // embedder gave it other files.
        if serverConfiguration.webSocket?.resources.isEmpty == true {
            serverConfiguration.webSocket?.resources = WebFiles.resources
        }
        let startedAt = ContinuousClock.now
        let ops = Locked<OpsServer?>(nil)
        let service = ShardedServerService(ShardedServer(configuration: serverConfiguration), onStart: { handle in
            // In a cluster the rooms may exist already (another relay made them): use them.
            for room in configuration.rooms { try handle.ensureRoom(room) }
            let server = try Self.startOps(configuration, handle: handle, startedAt: startedAt)
            ops.withLock { $0 = server }
            var addresses = RelayAddresses(
                relay: handle.localAddress,
                webSocket: handle.webSocketAddress,
                control: configuration.controlAddress == nil ? nil : server?.addresses.first,
                metrics: configuration.metricsAddress == nil ? nil : server?.addresses.last)
            addresses.cluster = configuration.server.cluster.map { ($0.servers, $0.nodeName) }
            logBanner(handle, addresses)
            onReady(addresses)
        }, onStop: {
            logger.info("shutting down: closing client connections")
            ops.withLock { $0 }?.stop()
        })
        try await service.run()
        logger.info("stopped")
    }

    private static func startOps(_ configuration: RelayConfiguration, handle: ServerHandle, startedAt: ContinuousClock.Instant) throws -> OpsServer? {
        var endpoints: [(address: SocketAddress, handler: any OpsProtocol)] = []
        do {
            if let control = configuration.controlAddress {
                endpoints.append((try SocketAddress(parsing: control), ControlProtocol(handle: handle, startedAt: startedAt)))
            }
            if let metrics = configuration.metricsAddress {
                endpoints.append((try SocketAddress(parsing: metrics), MetricsEndpoint(metrics: RelayMetrics(handle: handle))))
            }
        } catch {
            throw RelayError(description: error.description)
        }
        guard !endpoints.isEmpty else { return nil }
        let server: OpsServer
        do {
            server = try OpsServer(endpoints: endpoints)
        } catch {
            let which = [configuration.controlAddress.map { "control \($0)" }, configuration.metricsAddress.map { "metrics \($0)" }]
                .compactMap { $0 }.joined(separator: ", ")
            if error.errno == 98 {
                throw RelayError(description: "cannot listen on \(which): the port is in use (another relay running?)")
            }
            throw RelayError(description: "cannot listen on \(which): \(error)")
        }
        do {
            try server.start()
        } catch {
            server.stop()
            throw RelayError(description: "cannot start the operations endpoints: \(error)")
        }
        return server
    }

    private func logBanner(_ handle: ServerHandle, _ addresses: RelayAddresses) {
        let topology = handle.topology
        let workers = topology.workers.map { worker in
            "\(worker.threadName)@cpu\(worker.cpu.map(String.init) ?? "any")" + (worker.numaNode.map { "/node\($0)" } ?? "")
        }
        logger.info("ghost-sync relay started", metadata: [
            "version": "\(version)",
            "bind": "\(addresses.relay)",
            "ws": "\(addresses.webSocket.map { "ws://\($0)/ (demo page: http://\($0)/)" } ?? "off")",
            "listeners": "\(topology.workers.count) (SO_REUSEPORT, one per worker)",
            "workers": "\(workers.joined(separator: " "))",
            "numa_nodes": "\(topology.numaNodeCount)",
            "rooms": "\(handle.roomIDs.joined(separator: ","))",
            "control": "\(addresses.control.map(\.description) ?? "off")",
            "metrics": "\(addresses.metrics.map { "http://\($0)/metrics" } ?? "off")",
        ])
    }
}
