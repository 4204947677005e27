import CGhostSyncShims
import GhostSync
import Glibc

/// One GhostSync worker's counters as its relay's Prometheus endpoint (`/metrics`) shows them.
public struct WorkerCounters: Sendable, Equatable {
    /// `ghostsync_frames_in_total`: frames received from clients.
    public var framesIn = 0
    /// `ghostsync_frames_out_total`: frames queued to clients, each recipient counted once.
    public var framesOut = 0
    /// `ghostsync_write_calls_total`: gathered writes (sendmsg) on client sockets.
    public var writeCalls = 0
    /// `ghostsync_handoffs_in_total`: connections taken over from another worker.
    public var handoffsIn = 0
    /// `ghostsync_handoffs_out_total`: connections handed to another worker (one mailbox post each).
    public var handoffsOut = 0
    /// `ghostsync_connections`: client connections open on the worker (a gauge).
    public var connections = 0
    /// `ghostsync_cluster_messages_total{direction="out"}`: NATS messages the worker published.
    public var clusterMessagesOut = 0
    /// `ghostsync_cluster_messages_total{direction="in"}`: NATS messages the worker received.
    public var clusterMessagesIn = 0
    /// `ghostsync_cluster_drops_total`: cluster publishes the worker dropped.
    public var clusterDrops = 0

    public init() {}

    /// The counters that only grow (every field but the `connections` gauge): the one list
    /// `since` and `RelayCounters.total` go over.
    /// (Computed: key paths are not `Sendable`, so it cannot be a stored static.)
    static var totals: [WritableKeyPath<WorkerCounters, Int>] {
        [\.framesIn, \.framesOut, \.writeCalls, \.handoffsIn, \.handoffsOut, \.clusterMessagesOut, \.clusterMessagesIn, \.clusterDrops]
    }

    /// What changed from `earlier` to `self`; `connections` stays the current value.
    func since(_ earlier: WorkerCounters) -> WorkerCounters {
        var delta = self
        for field in Self.totals { delta[keyPath: field] -= earlier[keyPath: field] }
        return delta
    }
}

/// Reads a GhostSync relay's per-worker counters from its metrics endpoint.
enum RelayCounters {
    /// GET /metrics from `address` (host:port) over a blocking socket, bounded in time.
    static func scrape(_ address: String, timeout seconds: Int = 5) throws(BenchError) -> [Int: WorkerCounters] {
        let text = try HTTPGet.text(path: "/metrics", from: address, endpoint: "the relay's metrics endpoint", timeout: seconds)
        let counters = parse(text)
        if counters.isEmpty { throw BenchError("no per-worker ghostsync_ counters at \(address)/metrics (not a GhostSync relay?)") }
        return counters
    }

    /// A relay's counters summed over its workers (`connections`: the sum of the gauges).
    static func total(_ workers: [Int: WorkerCounters]) -> WorkerCounters {
        var sum = WorkerCounters()
        for counters in workers.values {
            for field in WorkerCounters.totals + [\.connections] { sum[keyPath: field] += counters[keyPath: field] }
        }
        return sum
    }

    /// Each relay's counters summed over its workers: the first relay's from `first` (already
    /// scraped, per worker), the others' scraped now from `others`.
    static func totals(first: [Int: WorkerCounters], others: some Sequence<String>) throws(BenchError) -> [WorkerCounters] {
        var totals = [total(first)]
        for address in others { totals.append(total(try scrape(address))) }
        return totals
    }

    /// Per-worker counters from Prometheus exposition text: sample lines
    /// `ghostsync_NAME{worker="N"} VALUE`; every other line is ignored.
    static func parse(_ text: String) -> [Int: WorkerCounters] {
        var workers: [Int: WorkerCounters] = [:]
        for line in text.split(separator: "\n") where line.hasPrefix("ghostsync_") {
            guard let brace = line.firstIndex(of: "{"), let close = line.firstIndex(of: "}") else { continue }
            let name = line[..<brace]
            let labels = line[line.index(after: brace)..<close]
            let field: WritableKeyPath<WorkerCounters, Int>
            switch name {
            case "ghostsync_cluster_messages_total":
                if labels.contains("direction=\"out\"") { field = \.clusterMessagesOut }
                else if labels.contains("direction=\"in\"") { field = \.clusterMessagesIn }
                else { continue }
            case "ghostsync_cluster_drops_total": field = \.clusterDrops
            case "ghostsync_frames_in_total": field = \.framesIn
            case "ghostsync_frames_out_total": field = \.framesOut
            case "ghostsync_write_calls_total": field = \.writeCalls
            case "ghostsync_handoffs_in_total": field = \.handoffsIn
            case "ghostsync_handoffs_out_total": field = \.handoffsOut
            case "ghostsync_connections": field = \.connections
            default: continue
            }
            guard let label = labels.split(separator: ",").first(where: { $0.hasPrefix("worker=\"") }),
                  let worker = Int(label.dropFirst("worker=\"".count).prefix { $0 != "\"" }),
                  let value = Double(line[line.index(after: close)...].trimmingPrefix(" ").prefix { $0 != " " })
            else { continue }
            workers[worker, default: WorkerCounters()][keyPath: field] += Int(value)
        }
        return workers
    }
}

extension ProcessCPU {
    /// User + system CPU seconds of each thread of `pid` named `PREFIX<n>` (GhostSync's workers
    /// are `ghost-w0`, `ghost-w1`, …), keyed by n: from /proc/PID/task/TID/comm and …/stat.
    /// Threads sharing a name (two servers in one process) are summed.
    static func threadSeconds(pid: Int32, namePrefix: String = "ghost-w") -> [Int: Double] {
        guard let directory = opendir("/proc/\(pid)/task") else { return [:] }
        defer { closedir(directory) }
        var result: [Int: Double] = [:]
        while let entry = readdir(directory) {
            let tid = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            guard let tidNumber = Int32(tid) else { continue }
            guard let name = firstLine(of: "/proc/\(pid)/task/\(tid)/comm"), name.hasPrefix(namePrefix),
                  let worker = Int(name.dropFirst(namePrefix.count)),
                  let cpu = seconds(statPath: "/proc/\(pid)/task/\(tidNumber)/stat")
            else { continue }
            result[worker, default: 0] += cpu
        }
        return result
    }

    static func firstLine(of path: String) -> String? {
        guard let file = fopen(path, "r") else { return nil }
        defer { fclose(file) }
        var buffer = [CChar](repeating: 0, count: 256)
        guard fgets(&buffer, Int32(buffer.count), file) != nil else { return nil }
        return String(decoding: buffer.prefix { $0 != 0 && $0 != 10 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

/// A GhostSync relay over the measured window, worker by worker.
struct RelayWindow {
    let workers: [WorkerWindow]
    /// Handoffs (`handoffs_out`, summed over workers) from before the first client connected to
    /// the start of the window: the joins that moved a connection to its room's worker. Nil
    /// without `metricsAddress`.
    let handoffsBeforeWindow: Int?

    init(cpuAtStart: [Int: Double], cpuAtEnd: [Int: Double],
         countersBefore: [Int: WorkerCounters]?, countersAtStart: [Int: WorkerCounters], countersAtEnd: [Int: WorkerCounters]) {
        let indices = Set(cpuAtEnd.keys).union(countersAtEnd.keys).sorted()
        workers = indices.map { index in
            WorkerWindow(
                worker: index,
                cpuSeconds: cpuAtEnd[index].flatMap { end in cpuAtStart[index].map { end - $0 } },
                counters: countersAtEnd[index].map { $0.since(countersAtStart[index] ?? WorkerCounters()) })
        }
        handoffsBeforeWindow = countersBefore.map { before in
            countersAtStart.reduce(0) { $0 + $1.value.handoffsOut - (before[$1.key]?.handoffsOut ?? 0) }
        }
    }
}

/// One GhostSync worker over the measured window: its thread's CPU time (from /proc) and what
/// its counters (from `/metrics`) advanced by.
public struct WorkerWindow: Sendable {
    public let worker: Int
    /// CPU seconds of thread `ghost-wN`; nil without `serverPID`.
    public let cpuSeconds: Double?
    /// Counter increases over the window (`connections`: open at its end); nil without `metricsAddress`.
    public let counters: WorkerCounters?

    /// Frames the worker queued to clients per CPU-second of its thread. In a load run that is
    /// its deliveries (plus the odd ping, one per client per ping interval).
    public var deliveriesPerCPUSecond: Double? {
        guard let cpu = cpuSeconds, cpu > 0, let counters else { return nil }
        return Double(counters.framesOut) / cpu
    }
}

/// One HTTP GET over a blocking socket, bounded in time: what the load generator reads from a
/// relay's `/metrics` and a NATS server's `/varz`.
enum HTTPGet {
    /// The whole response (status line, headers, body) of `GET path` at `address` (host:port),
    /// which must answer 200. Asked as HTTP/1.0, so the body comes whole, never chunked (Go's
    /// server, nats-server's, chunks larger HTTP/1.1 bodies).
    static func text(path: String, from address: String, endpoint: String, timeout seconds: Int = 5) throws(BenchError) -> String {
        let remote: SocketAddress
        do { remote = try SocketAddress(parsing: address) } catch { throw BenchError("\(endpoint) address \(address): \(error.description)") }
        let fd = socket(remote.family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw BenchError("socket: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var limit = timeval(tv_sec: seconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
        guard remote.withSockAddr({ connect(fd, $0, $1) }) == 0 else {
            throw BenchError("cannot reach \(endpoint) at \(address): \(String(cString: strerror(errno)))")
        }
        let request = Array("GET \(path) HTTP/1.0\r\nHost: \(address)\r\nConnection: close\r\n\r\n".utf8)
        guard request.withUnsafeBytes({ send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }) == request.count else {
            throw BenchError("cannot send the request for \(path) to \(address)")
        }
        var response: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65_536)
        while true {
            let count = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if count == 0 { break }
            if count < 0 {
                if errno == EINTR { continue }
                throw BenchError("reading \(path) from \(address): \(String(cString: strerror(errno)))")
            }
            response += chunk[0..<count]
        }
        let text = String(decoding: response, as: UTF8.self)
        guard text.hasPrefix("HTTP/1.1 200") || text.hasPrefix("HTTP/1.0 200") else {
            throw BenchError("\(endpoint) at \(address) answered: \(text.prefix { $0 != "\r" })")
        }
        return text
    }
}
