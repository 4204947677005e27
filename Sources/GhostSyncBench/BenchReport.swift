import Histogram

/// The outcome of one load run.
public struct BenchReport: Sendable {
    public let target: BenchTarget
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

    init(configuration: BenchConfiguration, tally: ThreadTally, serverCPUSeconds: Double?, generatorCPUSeconds: Double?, serverRSSKiB: (Int, Int)) {
        self.serverRSSKiB = serverRSSKiB
        target = configuration.target
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
        let histogram = tally.latency
        latencyMicroseconds = histogram.totalCount == 0 ? (0, 0, 0, 0, 0) : (
            histogram.valueAtPercentile(50), histogram.valueAtPercentile(90), histogram.valueAtPercentile(99),
            histogram.valueAtPercentile(99.9), histogram.max)
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

    /// Resident memory the relay gained per connected, joined client.
    public var serverBytesPerClient: Int? {
        serverRSSKiB.before > 0 ? (serverRSSKiB.joined - serverRSSKiB.before) * 1024 / clients : nil
    }

    public var table: String {
        func number(_ value: Double) -> String { value >= 100 ? String(Int(value.rounded())) : String(format2: value) }
        var lines = [
            "target            \(target.rawValue)",
            "scenario          \(clients) clients, \(rooms) rooms, \(mode == .open ? "\(number(rate)) msg/s each" : "closed loop, \(window) in flight"), \(payload) B",
            "measured          \(number(seconds)) s",
            "sent              \(sent)",
            "delivered         \(delivered) of \(expected) expected (ratio \(String(format4: deliveryRatio)))",
            "lost / dup / reordered   \(lost) / \(duplicated) / \(reordered)",
            "delivered/s       \(number(deliveredPerSecond))",
            "latency µs        p50 \(latencyMicroseconds.p50)  p90 \(latencyMicroseconds.p90)  p99 \(latencyMicroseconds.p99)  p99.9 \(latencyMicroseconds.p999)  max \(latencyMicroseconds.max)",
        ]
        if let cpu = serverCPUSeconds {
            lines.append("server CPU        \(String(format2: cpu)) s")
        }
        if let perCPU = deliveriesPerServerCPUSecond {
            lines.append("deliveries per server CPU-second   \(number(perCPU))")
        }
        if let generator = generatorCPUSeconds {
            lines.append("generator CPU     \(String(format2: generator)) s")
        }
        if let perClient = serverBytesPerClient {
            lines.append("server RSS        \(serverRSSKiB.before) KiB before, \(serverRSSKiB.joined) KiB joined: \(perClient) B per client")
        }
        return lines.joined(separator: "\n")
    }

    public var json: String {
        var fields: [(String, String)] = [
            ("target", "\"\(target.rawValue)\""), ("clients", "\(clients)"), ("rooms", "\(rooms)"),
            ("mode", "\"\(mode.rawValue)\""), ("rate", "\(rate)"), ("window", "\(window)"), ("payload", "\(payload)"),
            ("seconds", "\(seconds)"), ("sent", "\(sent)"), ("expected", "\(expected)"), ("delivered", "\(delivered)"),
            ("lost", "\(lost)"), ("duplicated", "\(duplicated)"), ("reordered", "\(reordered)"),
            ("delivery_ratio", "\(deliveryRatio)"), ("delivered_per_second", "\(deliveredPerSecond)"),
            ("latency_us", "{\"p50\":\(latencyMicroseconds.p50),\"p90\":\(latencyMicroseconds.p90),\"p99\":\(latencyMicroseconds.p99),\"p999\":\(latencyMicroseconds.p999),\"max\":\(latencyMicroseconds.max)}"),
        ]
        fields.append(("server_cpu_seconds", serverCPUSeconds.map { "\($0)" } ?? "null"))
        fields.append(("deliveries_per_server_cpu_second", deliveriesPerServerCPUSecond.map { "\($0)" } ?? "null"))
        fields.append(("generator_cpu_seconds", generatorCPUSeconds.map { "\($0)" } ?? "null"))
        fields.append(("server_rss_kib_before", "\(serverRSSKiB.before)"))
        fields.append(("server_rss_kib_joined", "\(serverRSSKiB.joined)"))
        fields.append(("server_bytes_per_client", serverBytesPerClient.map { "\($0)" } ?? "null"))
        return "{" + fields.map { "\"\($0.0)\":\($0.1)" }.joined(separator: ",") + "}"
    }
}

extension String {
    init(format2 value: Double) { self = String(Double(Int((value * 100).rounded())) / 100) }
    init(format4 value: Double) { self = String(Double(Int((value * 10_000).rounded())) / 10_000) }
}
