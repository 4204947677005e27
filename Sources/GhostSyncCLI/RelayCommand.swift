import ArgumentParser
import GhostSync
import GhostSyncRelay
import Glibc
import Logging
import ServiceLifecycle

/// `ghost-sync relay`: the relay process.
struct RelayCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "relay",
        abstract: "Run the relay (SIGINT/SIGTERM stop it gracefully).",
        discussion: """
            With no room flags it creates lobby, deathmatch and duel. Once everything listens it \
            prints one line on stdout: `ghost-sync ready relay=ADDR ws=ADDR control=ADDR metrics=ADDR` \
            (`off` for an endpoint that is turned off).
            """
    )

    @Option(help: "Listen address (port 0 picks a free port).")
    var bind = "0.0.0.0:7777"
    @Option(help: "Worker threads (default: every CPU of the affinity mask).")
    var workers: Int?
    @Option(help: "CPUs to pin workers to, e.g. 0-3,8.")
    var cpus: CPUListArgument?
    @Flag(name: .customLong("no-pin"), help: "Do not pin workers to CPUs.")
    var noPin = false
    @Flag(name: .customLong("no-numa"), help: "Do not place worker memory on its CPU's NUMA node.")
    var noNUMA = false
    @Option(name: .customLong("room"), help: "Create this room (repeatable).")
    var roomNames: [String] = []
    @Option(name: .customLong("rooms"), help: "Create room-1 ... room-N.")
    var roomCount: Int?
    @Option(help: "Most concurrent connections.")
    var maxClients = 1024
    @Option(help: "Largest client frame payload, in bytes.")
    var maxPayload = 64 * 1024
    @Option(help: "Disconnect a client silent this long (500ms, 2s, or seconds).")
    var idleTimeout = DurationArgument(argument: "31s")!
    @Option(help: "Ping cadence and pong deadline.")
    var pingInterval = DurationArgument(argument: "13s")!
    @Option(help: "Per-client outgoing queue, in frames; frames dropped when full.")
    var channelCapacity = 1024
    @Option(help: "Write coalescing window for tick-based games (e.g. 1ms, 5ms); 0 sends at once.")
    var flushInterval = DurationArgument(argument: "0")!
    @Option(help: "Longest room ID a client may join, in bytes.")
    var maxRoomIDLength = 256
    @Option(help: "Most members per room, enforced on the room's worker; a join past it gets Error(\"room full: ROOM\") (default: no limit).")
    var maxClientsPerRoom: Int?
    @Option(help: "Most simultaneous connections from one IP address (default: no limit).")
    var maxConnectionsPerIP: Int?
    @Option(help: "Most frames per second from one connection; over it the connection is closed (default: no limit).")
    var maxFramesPerSecond: Int?
    @Option(name: .customLong("ws"), help: "WebSocket address for browsers (also serves the demo page at /), e.g. 0.0.0.0:7780 (default: off).")
    var webSocket: String?
    @Option(name: .customLong("ws-origin"), help: "Allow WebSocket connections only from this Origin, e.g. https://game.example.com (repeatable; default: any).")
    var webSocketOrigins: [String] = []
    @Option(name: .customLong("cluster"), help: "Join a cluster of relays over these NATS servers, comma-separated: nats://10.0.0.5:4222,nats://10.0.0.6:4222 (default: none).")
    var clusterServers: String?
    @Option(name: .customLong("node"), help: "This relay's name in the cluster (default: the host name and the bind port).")
    var nodeName: String?
    @Option(help: "Cluster heartbeat interval; a relay silent for 3 of them is dead.")
    var heartbeatInterval = DurationArgument(argument: "1s")!
    @Option(help: "Copies of the cluster's room registry across the NATS servers (1, or 3 on a 3-server JetStream cluster).")
    var registryReplicas = 1
    @Flag(name: .customLong("no-registry"), help: "Cluster without the room registry (NATS without JetStream): every relay has its own rooms.")
    var noRegistry = false
    @Option(help: "Control protocol address (no authentication: keep it on loopback).")
    var control = "127.0.0.1:8888"
    @Flag(name: .customLong("no-control"), help: "Turn the control endpoint off.")
    var noControl = false
    @Option(help: "Prometheus metrics address (GET /metrics, /healthz).")
    var metrics = "127.0.0.1:9777"
    @Flag(name: .customLong("no-metrics"), help: "Turn the metrics endpoint off.")
    var noMetrics = false
    @Option(help: "trace, debug, info, notice, warning, error or critical.")
    var logLevel: Logger.Level = .info
    @Option(help: "text or json.")
    var logFormat: LogFormat = .text

    func validate() throws {
        if let workers, workers < 1 || workers > 1024 { throw ValidationError("--workers must be 1...1024") }
        if let roomCount, roomCount < 0 { throw ValidationError("--rooms must not be negative") }
        if maxClients < 1 { throw ValidationError("--max-clients must be at least 1") }
        if maxPayload < 4 { throw ValidationError("--max-payload must be at least 4 bytes") }
        if channelCapacity < 1 { throw ValidationError("--channel-capacity must be at least 1") }
        if idleTimeout.duration <= .zero { throw ValidationError("--idle-timeout must be positive") }
        if pingInterval.duration <= .zero { throw ValidationError("--ping-interval must be positive") }
        if flushInterval.duration > .seconds(1) { throw ValidationError("--flush-interval must be at most 1s") }
        if maxRoomIDLength < 1 { throw ValidationError("--max-room-id-length must be at least 1") }
        if let maxClientsPerRoom, maxClientsPerRoom < 1 { throw ValidationError("--max-clients-per-room must be at least 1") }
        if let maxConnectionsPerIP, maxConnectionsPerIP < 1 { throw ValidationError("--max-connections-per-ip must be at least 1") }
        if let maxFramesPerSecond, maxFramesPerSecond < 1 { throw ValidationError("--max-frames-per-second must be at least 1") }
        if webSocket == nil && !webSocketOrigins.isEmpty { throw ValidationError("--ws-origin needs --ws") }
        if clusterServers == nil && nodeName != nil { throw ValidationError("--node needs --cluster") }
        if clusterServers == nil && (noRegistry || registryReplicas != 1) { throw ValidationError("--registry-replicas and --no-registry need --cluster") }
        for (flag, address) in [("--bind", bind), ("--control", control), ("--metrics", metrics), ("--ws", webSocket ?? "127.0.0.1:0")] {
            do { _ = try SocketAddress(parsing: address) } catch { throw ValidationError("\(flag): \(error)") }
        }
    }

    func run() async throws {
        let level = logLevel
        let format = logFormat
        LoggingSystem.bootstrap { label in
            var handler: any LogHandler = format == .json ? JSONLogHandler(label: label) : StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "ghost-sync")
        // One descriptor per client plus a few per worker and endpoint; up to the hard limit,
        // which stays the operator's to set.
        let descriptors = DescriptorLimit.raise(to: maxClients + 256)
        if descriptors < maxClients + 64 {
            logger.warning("open-file limit is \(descriptors): fewer than --max-clients \(maxClients) connections fit; raise it (ulimit -n, LimitNOFILE)")
        }

        var configuration = RelayConfiguration()
        configuration.server.bindAddress = bind
        configuration.server.workers = workers
        configuration.server.cpus = cpus?.cpus
        configuration.server.pinning = !noPin
        configuration.server.numaAware = !noNUMA
        configuration.server.maxClients = maxClients
        configuration.server.maxPayload = maxPayload
        configuration.server.idleTimeout = idleTimeout.duration
        configuration.server.pingInterval = pingInterval.duration
        configuration.server.channelCapacity = channelCapacity
        configuration.server.maxRoomIDLength = maxRoomIDLength
        configuration.server.flushInterval = flushInterval.duration
        configuration.server.maxClientsPerRoom = maxClientsPerRoom
        configuration.server.maxConnectionsPerIP = maxConnectionsPerIP
        configuration.server.maxFramesPerSecond = maxFramesPerSecond
        if let clusterServers {
            let servers = clusterServers.split(separator: ",").map { String($0.filter { $0 != " " }) }.filter { !$0.isEmpty }
            var cluster = ClusterConfiguration(servers: servers, nodeName: nodeName ?? Self.defaultNodeName(bind: bind))
            cluster.heartbeatInterval = heartbeatInterval.duration
            cluster.registryReplicas = registryReplicas
            cluster.roomRegistry = !noRegistry
            configuration.server.cluster = cluster
        }
        if let webSocket {
            var settings = WebSocketConfiguration(bindAddress: webSocket)
            settings.allowedOrigins = webSocketOrigins.isEmpty ? nil : webSocketOrigins
            configuration.server.webSocket = settings
        }
        if !roomNames.isEmpty || roomCount != nil {
            configuration.rooms = roomNames + (roomCount.map { count in (0..<count).map { "room-\($0 + 1)" } } ?? [])
        }
        configuration.controlAddress = noControl ? nil : control
        configuration.metricsAddress = noMetrics ? nil : metrics

        let relay = RelayService(configuration: configuration, logger: logger, version: GhostSyncCommand.version) { addresses in
            print(addresses.readyLine)
            fflush(nil)
        }
        let group = ServiceGroup(configuration: .init(
            services: [.init(service: relay)],
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: Logger(label: "ghost-sync.lifecycle")))
        do {
            try await group.run()
        } catch {
            let message = (error as? ServiceGroupError).map { _ in "\(error)" } ?? "\(error)"
            let text = "ghost-sync: \(message)\n"
            _ = text.withCString { write(2, $0, strlen($0)) }
            throw ExitCode(1)
        }
    }

    /// `HOST-PORT`: unique per relay on one machine, recognisable across machines.
    static func defaultNodeName(bind: String) -> String {
        var name = [CChar](repeating: 0, count: 256)
        gethostname(&name, 255)
        let host = String(decoding: name.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return "\(host)-\(bind.split(separator: ":").last ?? "0")"
    }
}
