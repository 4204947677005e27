import Histogram

/// The outcome of one load run.
public struct BenchReport: Sendable {
    public let target: BenchTarget
    /// How the clients reached the relay (always `.tcp` for Redis and NATS).
    public let transport: BenchTransport
    public let clients: Int
    public let rooms: Int
    public let mode: BenchMode
    public let rate: Double
    public let window: Int
    public let payload: Int
    public let seconds: Double
    public let sent: Int
    public let expected: Int
    public let delivered: Int
    public let duplicated: Int
    public let reordered: Int
    /// One-way latency percentiles in microseconds: p50, p90, p99, p99.9, max.
    public let latencyMicroseconds: (p50: UInt64, p90: UInt64, p99: UInt64, p999: UInt64, max: UInt64)
    public let serverCPUSeconds: Double?
    public let generatorCPUSeconds: Double?
    /// The relay's resident memory (KiB) before the clients connected and once all had joined;
    /// 0 when no `serverPID` was given.
    public let serverRSSKiB: (before: Int, joined: Int)
    /// A GhostSync relay's workers over the measured window (CPU per worker thread with
    /// `serverPID`, counters with `metricsAddress`); empty when neither applies.
    public let workers: [WorkerWindow]
    /// Handoffs while the clients joined (before the window); nil without `metricsAddress`.
    public let handoffsBeforeWindow: Int?
    /// The relays the clients connected to (their TCP or WebSocket addresses), in order.
    public let relays: [String]
    /// With several relays: the deliveries between clients of the same relay, and between
    /// clients of different relays (through the cluster), each with its latency; nil with one.
    public let sameRelay: Split?
    public let crossRelay: Split?
    /// With several server PIDs: each one's CPU seconds over the window, in the order given
    /// (`serverCPUSeconds` is their sum).
    public let serverCPUSecondsEach: [Double]
    /// What the NATS servers (`natsMonitorAddresses`) counted over the window; nil without them.
    public let natsMessages: NATSMessageCounts?
    /// With several metrics endpoints (`metricsAddresses`): each relay's counters over the
    /// window, summed over its workers, in the order given; empty otherwise.
    public let relayCounters: [WorkerCounters]

    /// Deliveries of one kind and their one-way latency percentiles (µs).
    public struct Split: Sendable {
        public let delivered: Int
        public let latencyMicroseconds: (p50: UInt64, p90: UInt64, p99: UInt64, p999: UInt64, max: UInt64)

        init(_ split: ThreadTally.RelaySplit) {
            delivered = split.delivered
            latencyMicroseconds = BenchReport.percentiles(split.latency)
        }
    }

    static func percentiles(_ histogram: Histogram<UInt64>) -> (p50: UInt64, p90: UInt64, p99: UInt64, p999: UInt64, max: UInt64) {
        histogram.totalCount == 0 ? (0, 0, 0, 0, 0) : (
            histogram.valueAtPercentile(50), histogram.valueAtPercentile(90), histogram.valueAtPercentile(99),
            histogram.valueAtPercentile(99.9), histogram.max)
    }

    init(configuration: BenchConfiguration, tally: ThreadTally, serverCPUSeconds: Double?, generatorCPUSeconds: Double?, serverRSSKiB: (Int, Int),
         relay: RelayWindow? = nil, serverCPUSecondsEach: [Double] = [], natsMessages: NATSMessageCounts? = nil,
         relayCounters: [WorkerCounters] = []) {
        self.relayCounters = relayCounters
        relays = configuration.clientAddresses
        sameRelay = tally.sameRelay.map(Split.init)
        crossRelay = tally.crossRelay.map(Split.init)
        self.serverCPUSecondsEach = serverCPUSecondsEach
        self.natsMessages = natsMessages
        self.serverRSSKiB = serverRSSKiB
        workers = relay?.workers ?? []
        handoffsBeforeWindow = configuration.metricsAddress == nil ? nil : relay?.handoffsBeforeWindow
        target = configuration.target
        transport = configuration.transport
        clients = configuration.clients
        rooms = configuration.rooms
        mode = configuration.mode
        rate = configuration.rate
        window = configuration.window
        payload = configuration.payload
        seconds = Double(configuration.duration.nanoseconds) / 1e9
        sent = tally.sent
        expected = tally.expected
        delivered = tally.delivered
        duplicated = tally.duplicated
        reordered = tally.reordered
        latencyMicroseconds = Self.percentiles(tally.latency)
        self.serverCPUSeconds = serverCPUSeconds
        self.generatorCPUSeconds = generatorCPUSeconds
    }

    public var lost: Int { max(0, expected - delivered) }
    public var deliveryRatio: Double { expected == 0 ? 1 : Double(delivered) / Double(expected) }
    public var deliveredPerSecond: Double { Double(delivered) / seconds }
    /// Deliveries per CPU-second the relay spent in the measured window: the cost figure that
    /// compares relays fairly on a shared machine.
    public var deliveriesPerServerCPUSecond: Double? {
        guard let cpu = serverCPUSeconds, cpu > 0 else { return nil }
        return Double(delivered) / cpu
    }

    /// The relay's CPU time as a share of one core over the window (1 = one core busy throughout).
    public var serverCPUShare: Double? { serverCPUSeconds.map { $0 / seconds } }

    /// Worker-to-worker messages over the window: handoffs (`handoffs_out`, one mailbox post
    /// each), the only cross-worker traffic clients cause. Nil without `metricsAddress`.
    public var handoffsInWindow: Int? {
        let counted = workers.compactMap(\.counters)
        return counted.isEmpty ? nil : counted.reduce(0) { $0 + $1.handoffsOut }
    }

    /// Frames the relay's workers queued to clients over the window (their deliveries).
    public var relayFramesOut: Int? {
        let counted = workers.compactMap(\.counters)
        return counted.isEmpty ? nil : counted.reduce(0) { $0 + $1.framesOut }
    }

    /// Cross-worker messages per delivery in the window: 0 once every client has joined.
    public var crossWorkerMessagesPerDelivery: Double? {
        guard let handoffs = handoffsInWindow, let frames = relayFramesOut, frames > 0 else { return nil }
        return Double(handoffs) / Double(frames)
    }

    /// NATS messages per broadcast sent in the window: publishes received by the NATS servers
    /// (`in_msgs`) and messages they delivered to subscribers (`out_msgs`). Nil without
    /// `natsMonitorAddresses` or without a broadcast.
    public var natsMessagesPerBroadcast: (in: Double, out: Double)? {
        guard let natsMessages, sent > 0 else { return nil }
        return (Double(natsMessages.inMessages) / Double(sent), Double(natsMessages.outMessages) / Double(sent))
    }

    /// Resident memory the relay gained per connected, joined client.
    public var serverBytesPerClient: Int? {
        serverRSSKiB.before > 0 ? (serverRSSKiB.joined - serverRSSKiB.before) * 1024 / clients : nil
    }

    public var table: String {
        func number(_ value: Double) -> String { value >= 100 ? String(Int(value.rounded())) : String(format2: value) }
        var lines = [
            "target            \(target.rawValue)" + (transport == .webSocket ? " over WebSocket" : ""),
            "scenario          \(clients) clients, \(rooms) rooms, \(mode == .open ? "\(number(rate)) msg/s each" : "closed loop, \(window) in flight"), \(payload) B",
            "measured          \(number(seconds)) s",
            "sent              \(sent)",
            "delivered         \(delivered) of \(expected) expected (ratio \(String(format4: deliveryRatio)))",
            "lost / dup / reordered   \(lost) / \(duplicated) / \(reordered)",
            "delivered/s       \(number(deliveredPerSecond))",
            "latency µs        p50 \(latencyMicroseconds.p50)  p90 \(latencyMicroseconds.p90)  p99 \(latencyMicroseconds.p99)  p99.9 \(latencyMicroseconds.p999)  max \(latencyMicroseconds.max)",
        ]
        if let cpu = serverCPUSeconds, let share = serverCPUShare {
            lines.append("server CPU        \(String(format2: cpu)) s (\(Int((share * 100).rounded())) % of one core)")
        }
        if let perCPU = deliveriesPerServerCPUSecond {
            lines.append("deliveries per server CPU-second   \(number(perCPU))")
        }
        if let generator = generatorCPUSeconds {
            lines.append("generator CPU     \(String(format2: generator)) s")
        }
        if serverCPUSecondsEach.count > 1 {
            lines.append("server CPU each   " + serverCPUSecondsEach.map { "\(String(format2: $0)) s" }.joined(separator: ", "))
        }
        if relays.count > 1 {
            lines.append("relays            " + relays.joined(separator: ", "))
        }
        for (name, split) in [("same relay", sameRelay), ("cross relay", crossRelay)] {
            guard let split else { continue }
            let latency = split.latencyMicroseconds
            lines.append("\(name)\(String(repeating: " ", count: 18 - name.count))\(split.delivered) delivered, latency µs p50 \(latency.p50)  p99 \(latency.p99)  max \(latency.max)")
        }
        if let natsMessages, let perBroadcast = natsMessagesPerBroadcast {
            lines.append("NATS messages     \(natsMessages.inMessages) in, \(natsMessages.outMessages) out: \(String(format2: perBroadcast.in)) in and \(String(format2: perBroadcast.out)) out per broadcast")
        }
        for (index, counters) in relayCounters.enumerated() {
            let perFrame = counters.framesIn > 0 ? " (\(String(format2: Double(counters.clusterMessagesOut) / Double(counters.framesIn))) per frame in)" : ""
            lines.append("relay \(index)\(String(repeating: " ", count: max(1, 12 - "\(index)".count)))frames in \(counters.framesIn)  out \(counters.framesOut)  NATS published \(counters.clusterMessagesOut)\(perFrame)  received \(counters.clusterMessagesIn)  dropped \(counters.clusterDrops)")
        }
        if let perClient = serverBytesPerClient {
            lines.append("server RSS        \(serverRSSKiB.before) KiB before, \(serverRSSKiB.joined) KiB joined: \(perClient) B per client")
        }
        for worker in workers {
            var line = "worker \(worker.worker)"
            line += String(repeating: " ", count: max(1, 18 - line.count))
            if let cpu = worker.cpuSeconds { line += "CPU \(String(format2: cpu)) s  " }
            if let counters = worker.counters {
                line += "frames out \(counters.framesOut)  handoffs in/out \(counters.handoffsIn)/\(counters.handoffsOut)  connections \(counters.connections)  "
            }
            if let perCPU = worker.deliveriesPerCPUSecond { line += "deliveries per CPU-second \(number(perCPU))" }
            lines.append(line.trimmingSuffix())
        }
        if let before = handoffsBeforeWindow, let during = handoffsInWindow {
            lines.append("handoffs          \(before) while joining, \(during) in the window")
        }
        return lines.joined(separator: "\n")
    }

    public var json: String {
        var fields: [(String, String)] = [
            ("target", "\"\(target.rawValue)\""), ("transport", "\"\(transport.rawValue)\""), ("clients", "\(clients)"), ("rooms", "\(rooms)"),
            ("mode", "\"\(mode.rawValue)\""), ("rate", "\(rate)"), ("window", "\(window)"), ("payload", "\(payload)"),
            ("seconds", "\(seconds)"), ("sent", "\(sent)"), ("expected", "\(expected)"), ("delivered", "\(delivered)"),
            ("lost", "\(lost)"), ("duplicated", "\(duplicated)"), ("reordered", "\(reordered)"),
            ("delivery_ratio", "\(deliveryRatio)"), ("delivered_per_second", "\(deliveredPerSecond)"),
            ("latency_us", "{\"p50\":\(latencyMicroseconds.p50),\"p90\":\(latencyMicroseconds.p90),\"p99\":\(latencyMicroseconds.p99),\"p999\":\(latencyMicroseconds.p999),\"max\":\(latencyMicroseconds.max)}"),
        ]
        fields.append(("server_cpu_seconds", serverCPUSeconds.map { "\($0)" } ?? "null"))
        fields.append(("server_cpu_share", serverCPUShare.map { "\($0)" } ?? "null"))
        fields.append(("deliveries_per_server_cpu_second", deliveriesPerServerCPUSecond.map { "\($0)" } ?? "null"))
        fields.append(("generator_cpu_seconds", generatorCPUSeconds.map { "\($0)" } ?? "null"))
        fields.append(("server_rss_kib_before", "\(serverRSSKiB.before)"))
        fields.append(("server_rss_kib_joined", "\(serverRSSKiB.joined)"))
        fields.append(("server_bytes_per_client", serverBytesPerClient.map { "\($0)" } ?? "null"))
        if !workers.isEmpty {
            let objects = workers.map { worker -> String in
                var items = ["\"worker\":\(worker.worker)", "\"cpu_seconds\":\(worker.cpuSeconds.map { "\($0)" } ?? "null")"]
                if let counters = worker.counters {
                    items += ["\"frames_in\":\(counters.framesIn)", "\"frames_out\":\(counters.framesOut)", "\"write_calls\":\(counters.writeCalls)",
                              "\"handoffs_in\":\(counters.handoffsIn)", "\"handoffs_out\":\(counters.handoffsOut)", "\"connections\":\(counters.connections)"]
                }
                items.append("\"deliveries_per_cpu_second\":\(worker.deliveriesPerCPUSecond.map { "\($0)" } ?? "null")")
                return "{" + items.joined(separator: ",") + "}"
            }
            fields.append(("workers", "[" + objects.joined(separator: ",") + "]"))
        }
        // Several relays, several server PIDs, NATS servers: fields that a single-relay run
        // without them does not have (its line stays as it was).
        if relays.count > 1 {
            fields.append(("relays", "[" + relays.map { "\"\($0)\"" }.joined(separator: ",") + "]"))
        }
        for (name, split) in [("same_relay", sameRelay), ("cross_relay", crossRelay)] {
            guard let split else { continue }
            let latency = split.latencyMicroseconds
            fields.append(("delivered_\(name)", "\(split.delivered)"))
            fields.append(("latency_\(name)_us", "{\"p50\":\(latency.p50),\"p90\":\(latency.p90),\"p99\":\(latency.p99),\"p999\":\(latency.p999),\"max\":\(latency.max)}"))
        }
        if serverCPUSecondsEach.count > 1 {
            fields.append(("server_cpu_seconds_each", "[" + serverCPUSecondsEach.map { "\($0)" }.joined(separator: ",") + "]"))
        }
        if let natsMessages {
            fields.append(("nats_in_msgs", "\(natsMessages.inMessages)"))
            fields.append(("nats_out_msgs", "\(natsMessages.outMessages)"))
            if let perBroadcast = natsMessagesPerBroadcast {
                fields.append(("nats_in_msgs_per_broadcast", "\(perBroadcast.in)"))
                fields.append(("nats_out_msgs_per_broadcast", "\(perBroadcast.out)"))
            }
        }
        if !relayCounters.isEmpty {
            let objects = relayCounters.map { counters in
                "{\"frames_in\":\(counters.framesIn),\"frames_out\":\(counters.framesOut),\"nats_published\":\(counters.clusterMessagesOut),"
                    + "\"nats_received\":\(counters.clusterMessagesIn),\"nats_drops\":\(counters.clusterDrops)}"
            }
            fields.append(("relay_counters", "[" + objects.joined(separator: ",") + "]"))
        }
        if let before = handoffsBeforeWindow { fields.append(("handoffs_before_window", "\(before)")) }
        if let during = handoffsInWindow { fields.append(("handoffs_in_window", "\(during)")) }
        if let frames = relayFramesOut { fields.append(("relay_frames_out", "\(frames)")) }
        if let perDelivery = crossWorkerMessagesPerDelivery { fields.append(("cross_worker_messages_per_delivery", "\(perDelivery)")) }
        return "{" + fields.map { "\"\($0.0)\":\($0.1)" }.joined(separator: ",") + "}"
    }
}

extension String {
    func trimmingSuffix() -> String {
        var text = self
        while text.last == " " { text.removeLast() }
        return text
    }

    init(format2 value: Double) { self = String(Double(Int((value * 100).rounded())) / 100) }
    init(format4 value: Double) { self = String(Double(Int((value * 10_000).rounded())) / 10_000) }
}
