import GhostSync
import Prometheus

/// The relay's Prometheus metrics, built with swift-prometheus. Nothing is counted on the relay
/// path for them: each worker keeps plain counters (`WorkerStatistics`); a scrape reads the
/// published copies and advances the Prometheus counters by what changed since the last scrape.
package final class RelayMetrics: Sendable {
    /// One exported counter: its Prometheus name, help text, and the engine counter behind it.
    private struct CounterSpec {
        let name: String
        let help: String
        var labels: [(String, String)] = []
        /// The engine counter(s) behind it; a difference of counters that only grow.
        let value: @Sendable (WorkerStatistics) -> Int

        init(name: String, help: String, counter: WorkerStatistics.Counter, labels: [(String, String)] = []) {
            self.init(name: name, help: help, labels: labels) { $0[counter] }
        }

        init(name: String, help: String, labels: [(String, String)], value: @escaping @Sendable (WorkerStatistics) -> Int) {
            self.name = name
            self.help = help
            self.labels = labels
            self.value = value
        }
    }

    private static let counterSpecs: [CounterSpec] = [
        .init(name: "ghostsync_connections_total", help: "Client connections accepted (WebSocket ones once upgraded).", labels: [("transport", "tcp")]) {
            $0[.connectionsAccepted] - $0[.webSocketUpgrades]
        },
        .init(name: "ghostsync_connections_total", help: "Client connections accepted (WebSocket ones once upgraded).", counter: .webSocketUpgrades, labels: [("transport", "websocket")]),
        .init(name: "ghostsync_websocket_handshakes_refused_total", help: "WebSocket handshakes answered with an HTTP error or past the handshake timeout.", counter: .webSocketHandshakesRefused),
        .init(name: "ghostsync_http_responses_total", help: "Plain HTTP GETs answered on the WebSocket port (demo page, client module, 404s).", counter: .httpResponses),
        .init(name: "ghostsync_cluster_messages_total", help: "NATS messages published and received (cluster).", counter: .clusterMessagesOut, labels: [("direction", "out")]),
        .init(name: "ghostsync_cluster_messages_total", help: "NATS messages published and received (cluster).", counter: .clusterMessagesIn, labels: [("direction", "in")]),
        .init(name: "ghostsync_cluster_bytes_total", help: "NATS bytes published (payloads) and read (cluster).", counter: .clusterBytesOut, labels: [("direction", "out")]),
        .init(name: "ghostsync_cluster_bytes_total", help: "NATS bytes published (payloads) and read (cluster).", counter: .clusterBytesIn, labels: [("direction", "in")]),
        .init(name: "ghostsync_cluster_drops_total", help: "Cluster publishes dropped: NATS link down, queue full, or over NATS's max_payload.", counter: .clusterDrops),
        .init(name: "ghostsync_cluster_connects_total", help: "NATS connections made (each worker has one).", counter: .clusterConnects),
        .init(name: "ghostsync_cluster_disconnects_total", help: "NATS connections lost.", counter: .clusterDisconnects),
        .init(name: "ghostsync_cluster_errors_total", help: "NATS -ERR answers and unreadable cluster messages.", counter: .clusterErrors),
        .init(name: "ghostsync_cluster_dead_nodes_total", help: "Relays found dead (missed heartbeats) or announced leaving.", counter: .clusterDeadNodes),
        .init(name: "ghostsync_websocket_pings_answered_total", help: "WebSocket Ping frames answered with a Pong.", counter: .webSocketPingsAnswered),
        .init(name: "ghostsync_connections_refused_total", help: "Connections closed at accept (maxClients or onConnect).", counter: .connectionsRefused),
        .init(name: "ghostsync_joins_total", help: "Room joins completed.", counter: .joins),
        .init(name: "ghostsync_leaves_total", help: "Room leaves (requested, by switching rooms, or by disconnecting).", counter: .leaves),
        .init(name: "ghostsync_frames_in_total", help: "Frames received from clients.", counter: .framesReceived),
        .init(name: "ghostsync_frames_out_total", help: "Frames queued to clients (each recipient counts once).", counter: .framesQueued),
        .init(name: "ghostsync_bytes_in_total", help: "Bytes read from clients.", counter: .bytesRead),
        .init(name: "ghostsync_bytes_out_total", help: "Bytes written to clients.", counter: .bytesWritten),
        .init(name: "ghostsync_frames_dropped_total", help: "Frames dropped because a client's queue was full (backpressure).", counter: .framesDropped),
        .init(name: "ghostsync_handoffs_out_total", help: "Connections handed to another worker (cross-shard joins).", counter: .handoffsOut),
        .init(name: "ghostsync_handoffs_in_total", help: "Connections taken over from another worker.", counter: .handoffsIn),
        .init(name: "ghostsync_read_calls_total", help: "read() system calls on client sockets.", counter: .readCalls),
        .init(name: "ghostsync_write_calls_total", help: "Gathered write (sendmsg) system calls on client sockets.", counter: .writeCalls),
        .init(name: "ghostsync_loop_iterations_total", help: "Event-loop iterations (one epoll_wait each).", counter: .loopIterations),
        .init(name: "ghostsync_disconnects_total", help: "Client disconnects by reason.", counter: .disconnectsIdleTimeout, labels: [("reason", "idle_timeout")]),
        .init(name: "ghostsync_disconnects_total", help: "Client disconnects by reason.", counter: .disconnectsPingTimeout, labels: [("reason", "ping_timeout")]),
        .init(name: "ghostsync_disconnects_total", help: "Client disconnects by reason.", counter: .disconnectsClosed, labels: [("reason", "connection_closed")]),
        .init(name: "ghostsync_disconnects_total", help: "Client disconnects by reason.", counter: .disconnectsReset, labels: [("reason", "connection_reset")]),
        .init(name: "ghostsync_disconnects_total", help: "Client disconnects by reason.", counter: .disconnectsPayloadTooLarge, labels: [("reason", "payload_too_large")]),
        .init(name: "ghostsync_disconnects_total", help: "Client disconnects by reason.", counter: .disconnectsProtocol, labels: [("reason", "protocol")]),
        .init(name: "ghostsync_disconnects_total", help: "Client disconnects by reason.", counter: .disconnectsRateLimited, labels: [("reason", "rate_limited")]),
        .init(name: "ghostsync_disconnects_total", help: "Client disconnects by reason.", counter: .disconnectsKicked, labels: [("reason", "kicked")]),
        .init(name: "ghostsync_broadcasts_filtered_total", help: "Client broadcasts a BroadcastFilter dropped or rejected.", counter: .broadcastsFiltered),
        .init(name: "ghostsync_joins_refused_full_total", help: "Joins refused because the room was at maxClientsPerRoom.", counter: .joinsRefusedFull),
        .init(name: "ghostsync_server_broadcasts_total", help: "Broadcasts the server itself sent to a room (ServerHandle.broadcast, ROOM_BROADCAST).", counter: .serverBroadcasts),
    ]

    let handle: ServerHandle
    private let registry: PrometheusCollectorRegistry
    /// [worker][spec] counters, and the worker statistics they were last advanced to.
    private let counters: [[Prometheus.Counter]]
    private let connections: [Prometheus.Gauge]
    private let rooms: Prometheus.Gauge
    /// Open clients by transport: [tcp, websocket].
    private let clients: [Prometheus.Gauge]
    private let lastSeen: Locked<[WorkerStatistics]>
    private let clusterLinksUp: Prometheus.Gauge
    private let clusterNodes: Prometheus.Gauge
    private let clusterRemoteMembers: Prometheus.Gauge
    private let clusterRegistryUp: Prometheus.Gauge

    package init(handle: ServerHandle) {
        self.handle = handle
        let workers = handle.topology.workers.count
        let registry = PrometheusCollectorRegistry()
        self.registry = registry
        counters = (0..<workers).map { worker in
            Self.counterSpecs.map { spec in
                registry.makeCounter(descriptor: Self.descriptor(spec.name, spec.help), labels: [("worker", "\(worker)")] + spec.labels)
            }
        }
        connections = (0..<workers).map { worker in
            registry.makeGauge(descriptor: Self.descriptor("ghostsync_connections", "Client connections open on each worker."), labels: [("worker", "\(worker)")])
        }
        rooms = registry.makeGauge(descriptor: Self.descriptor("ghostsync_rooms", "Rooms that exist."))
        clients = ClientTransport.allCases.map { transport in
            registry.makeGauge(descriptor: Self.descriptor("ghostsync_clients", "Client connections open, by transport."), labels: [("transport", transport.rawValue)])
        }
        lastSeen = Locked(Array(repeating: WorkerStatistics(), count: workers))
        clusterLinksUp = registry.makeGauge(descriptor: Self.descriptor("ghostsync_cluster_links_up", "Workers whose NATS connection is up (cluster)."))
        clusterNodes = registry.makeGauge(descriptor: Self.descriptor("ghostsync_cluster_nodes", "Other relays of the cluster alive."))
        clusterRemoteMembers = registry.makeGauge(descriptor: Self.descriptor("ghostsync_cluster_remote_members", "Members of this relay's rooms on other relays."))
        clusterRegistryUp = registry.makeGauge(descriptor: Self.descriptor("ghostsync_cluster_registry_up", "1 while the cluster's room registry is connected and up to date (room changes possible)."))
    }

    /// The exposition text (Prometheus format 0.0.4), current as of the workers' last iteration.
    package func scrape() -> [UInt8] {
        let statistics = handle.workerStatistics
        return lastSeen.withLock { lastSeen in
            for (worker, current) in statistics.enumerated() {
                for (index, spec) in Self.counterSpecs.enumerated() {
                    let delta = spec.value(current) - spec.value(lastSeen[worker])
                    if delta > 0 { counters[worker][index].increment(by: Int64(delta)) }
                }
                let open = current[.connectionsAccepted] + current[.handoffsIn] - current[.handoffsOut]
                    - Self.disconnects(current)
                connections[worker].set(Double(open))
                lastSeen[worker] = current
            }
            rooms.set(Double(handle.roomCount))
            // Upgraded WebSocket clients; the rest of the open connections are TCP clients
            // (WebSocket connections still in their handshake are not clients yet).
            let total = statistics.reduce(0) { $0 + $1[.connectionsAccepted] + $1[.handoffsIn] - $1[.handoffsOut] - Self.disconnects($1) }
            let webSocket = statistics.reduce(0) { $0 + $1[.webSocketUpgrades] - $1[.webSocketDisconnects] }
            clients[0].set(Double(total - webSocket))
            clients[1].set(Double(webSocket))
            if let links = handle.clusterLinksUp {
                clusterLinksUp.set(Double(links))
                clusterNodes.set(Double(handle.clusterNodes.count))
                clusterRemoteMembers.set(Double(handle.remoteMemberCount))
                if let ready = handle.clusterRegistryReady { clusterRegistryUp.set(Double(ready ? 1 : 0)) }
            }
            var buffer = registry.emitToBuffer()
            buffer += Array(Self.loopTimeHistogram(statistics).utf8)
            return buffer
        }
    }

    /// `ghostsync_frames_in_total` → namespace `ghostsync`, name `frames_in`, unit `total`.
    private static func descriptor(_ fullName: String, _ help: String) -> MetricNameDescriptor {
        var name = String(fullName.dropFirst("ghostsync_".count))
        var unit = ""
        if name.hasSuffix("_total") {
            name = String(name.dropLast("_total".count))
            unit = "total"
        }
        return MetricNameDescriptor(namespace: "ghostsync", metricName: name, unitName: unit, helpText: help)
    }

    private static func disconnects(_ statistics: WorkerStatistics) -> Int {
        statistics[.disconnectsIdleTimeout] + statistics[.disconnectsPingTimeout] + statistics[.disconnectsClosed]
            + statistics[.disconnectsReset] + statistics[.disconnectsPayloadTooLarge] + statistics[.disconnectsProtocol]
            + statistics[.disconnectsRateLimited] + statistics[.disconnectsKicked]
    }

    /// The event-loop iteration time histogram. The workers keep its buckets as plain counters,
    /// so it is written here directly rather than recorded sample by sample into a registry
    /// histogram (which would take a lock per iteration).
    private static func loopTimeHistogram(_ statistics: [WorkerStatistics]) -> String {
        let name = "ghostsync_loop_iteration_seconds"
        var text = "# HELP \(name) Time each event-loop iteration spent working (from epoll_wait returning to the end of the iteration).\n"
        text += "# TYPE \(name) histogram\n"
        let bounds = WorkerStatistics.loopTimeBucketBounds
        for (worker, current) in statistics.enumerated() {
            var cumulative = 0
            for (index, bound) in bounds.enumerated() {
                cumulative += current.loopTimeCount(bucket: index)
                text += "\(name)_bucket{worker=\"\(worker)\",le=\"\(Double(bound) / 1_000_000)\"} \(cumulative)\n"
            }
            cumulative += current.loopTimeCount(bucket: bounds.count)
            text += "\(name)_bucket{worker=\"\(worker)\",le=\"+Inf\"} \(cumulative)\n"
            text += "\(name)_sum{worker=\"\(worker)\"} \(Double(current[.busyNanoseconds]) / 1_000_000_000)\n"
            text += "\(name)_count{worker=\"\(worker)\"} \(cumulative)\n"
        }
        return text
    }
}

/// `GET /metrics` (Prometheus text) and `GET /healthz` over HTTP/1.x; one request per connection.
package struct MetricsEndpoint: OpsProtocol {
    let metrics: RelayMetrics

    package init(metrics: RelayMetrics) {
        self.metrics = metrics
    }

    package func respond(to input: inout [UInt8]) -> (output: [UInt8], close: Bool) {
        guard let end = Self.headerEnd(input) else {
            if input.count > 8192 { return (Self.response(431, "Request Header Fields Too Large", "headers too large\n"), true) }
            return ([], false)
        }
        let head = String(decoding: input[..<end], as: UTF8.self)
        input.removeAll()
        let parts = head.split(separator: "\r\n").first?.split(separator: " ") ?? []
        guard parts.count >= 2 else { return (Self.response(400, "Bad Request", "bad request\n"), true) }
        let method = parts[0]
        let path = parts[1].split(separator: "?").first.map(String.init) ?? ""
        guard method == "GET" || method == "HEAD" else {
            return (Self.response(405, "Method Not Allowed", "only GET\n"), true)
        }
        switch path {
        case "/metrics":
            return (Self.response(200, "OK", metrics.scrape(), type: "text/plain; version=0.0.4; charset=utf-8", headOnly: method == "HEAD"), true)
        case "/healthz":
            // Unhealthy once a worker's event loop has failed: its shard refuses joins until
            // the process is restarted (see `WorkerFailure`).
            let failures = metrics.handle.failedWorkers
            if !failures.isEmpty {
                let body = "unhealthy\n" + failures.map { "\($0)\n" }.joined()
                return (Self.response(503, "Service Unavailable", body, headOnly: method == "HEAD"), true)
            }
            return (Self.response(200, "OK", "ok\n", headOnly: method == "HEAD"), true)
        default:
            return (Self.response(404, "Not Found", "not found: try /metrics or /healthz\n"), true)
        }
    }

    private static func headerEnd(_ bytes: [UInt8]) -> Int? {
        guard bytes.count >= 4 else { return nil }
        for index in 0...(bytes.count - 4) where bytes[index] == 13 && bytes[index + 1] == 10 && bytes[index + 2] == 13 && bytes[index + 3] == 10 {
            return index
        }
        return nil
    }

    static func response(_ status: Int, _ reason: String, _ body: String, type: String = "text/plain; charset=utf-8", headOnly: Bool = false) -> [UInt8] {
        response(status, reason, Array(body.utf8), type: type, headOnly: headOnly)
    }

    static func response(_ status: Int, _ reason: String, _ body: [UInt8], type: String, headOnly: Bool = false) -> [UInt8] {
        let head = "HTTP/1.1 \(status) \(reason)\r\nContent-Type: \(type)\r\nContent-Length: \(body.count)\r\nConnection: close\r\n\r\n"
        return Array(head.utf8) + (headOnly ? [] : body)
    }
}
