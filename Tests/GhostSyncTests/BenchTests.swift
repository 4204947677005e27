import Foundation
import Testing
@testable import GhostSync
@testable import GhostSyncBench

extension Relay {
    /// The load generator's accounting on small runs against the in-process server.
    @Suite struct BenchTests {
        private func configuration(port: UInt16) -> BenchConfiguration {
            smallBenchRun(port: port, clients: 20, rooms: 4, rate: 50)
        }

        @Test func openLoopCountsEveryDelivery() async throws {
            let rooms = (1...4).map { "room-\($0)" }
            try await withServer(workers: 2, rooms: rooms) { _, port in
                let report = try await LoadGenerator.run(configuration(port: port))
                #expect(report.sent > 0)
                #expect(report.expected == report.sent * 4)  // five members per room: four recipients each
                #expect(report.delivered == report.expected)
                #expect(report.lost == 0 && report.duplicated == 0 && report.reordered == 0)
                #expect(report.latencyMicroseconds.p50 > 0 && report.latencyMicroseconds.max >= report.latencyMicroseconds.p99)
                #expect(report.serverCPUSeconds != nil)
                let object = try JSONSerialization.jsonObject(with: Data(report.json.utf8)) as? [String: Any]
                #expect(object?["delivered"] as? Int == report.delivered)
                #expect(object?["delivery_ratio"] as? Double == 1.0)
                #expect((object?["latency_us"] as? [String: Any])?["p99"] != nil)
                #expect(report.table.contains("delivered         \(report.delivered) of \(report.expected)"))
                let share = try #require(object?["server_cpu_share"] as? Double)
                #expect(abs(share - report.serverCPUSeconds! / report.seconds) < 1e-9)
            }
        }

        /// `--metrics`: per-worker counters and thread CPU over the window, from a real relay
        /// process with two workers; no handoff once every client has joined.
        @Test func perWorkerFiguresFromTheRelaysMetrics() async throws {
            let relay = try RelayProcess(["--rooms", "4"])
            var run = configuration(port: relay.relayPort)
            run.serverPID = relay.process.pid
            run.metricsAddress = relay.metrics
            let report = try await LoadGenerator.run(run)
            #expect(report.delivered == report.expected && report.delivered > 0)
            #expect(report.workers.map(\.worker) == [0, 1])
            #expect(report.workers.allSatisfy { $0.cpuSeconds != nil && $0.counters != nil })
            #expect(report.workers.reduce(0) { $0 + $1.counters!.connections } == 20)
            #expect((0...20).contains(report.handoffsBeforeWindow ?? -1))
            #expect(report.handoffsInWindow == 0)
            #expect(report.crossWorkerMessagesPerDelivery == 0)
            #expect(report.relayFramesOut ?? 0 > 0)
            #expect(report.workers.reduce(0) { $0 + $1.counters!.framesIn } > 0)
            let object = try JSONSerialization.jsonObject(with: Data(report.json.utf8)) as? [String: Any]
            let workers = try #require(object?["workers"] as? [[String: Any]])
            #expect(workers.map { $0["worker"] as? Int } == [0, 1])
            #expect(workers.allSatisfy { $0["cpu_seconds"] is Double && $0["frames_out"] is Int && $0["handoffs_in"] is Int })
            #expect(object?["handoffs_in_window"] as? Int == 0)
            #expect(object?["cross_worker_messages_per_delivery"] as? Double == 0)
            #expect(report.table.contains("worker 1"))
            #expect(report.table.contains("in the window"))
        }

        @Test func unreachableMetricsEndpointFailsBeforeConnecting() async throws {
            var configuration = smallBenchRun(port: 1, clients: 2, rooms: 1, rate: 10)
            configuration.metricsAddress = "127.0.0.1:1"
            do {
                _ = try await LoadGenerator.run(configuration)
                Issue.record("the run should have failed")
            } catch let error as BenchError {
                #expect(error.description.contains("metrics endpoint at 127.0.0.1:1"))
            }
            configuration.metricsAddress = "no-port"
            #expect(throws: BenchError.self) { try configuration.validated() }
        }

        @Test func prometheusTextGivesPerWorkerCounters() {
            let text = """
                # HELP ghostsync_frames_out_total Frames queued to clients (each recipient counts once).
                # TYPE ghostsync_frames_out_total counter
                ghostsync_frames_out_total{worker="0"} 1500
                ghostsync_frames_out_total{worker="1"} 2.5e3
                ghostsync_frames_in_total{worker="1"} 7
                ghostsync_handoffs_in_total{worker="1"} 3
                ghostsync_handoffs_out_total{worker="0"} 3
                ghostsync_write_calls_total{worker="0"} 11
                ghostsync_disconnects_total{worker="0",reason="idle_timeout"} 4
                ghostsync_connections{worker="0"} 10
                ghostsync_connections{worker="1"} 12
                ghostsync_clients 22
                ghostsync_loop_iteration_seconds_bucket{worker="0",le="1e-05"} 99
                ghostsync_loop_iteration_seconds_count{worker="0"} 99
                """
            let workers = RelayCounters.parse(text)
            #expect(workers.keys.sorted() == [0, 1])
            var first = WorkerCounters()
            first.framesOut = 1500
            first.handoffsOut = 3
            first.writeCalls = 11
            first.connections = 10
            var second = WorkerCounters()
            second.framesOut = 2500
            second.framesIn = 7
            second.handoffsIn = 3
            second.connections = 12
            #expect(workers[0] == first)
            #expect(workers[1] == second)
        }

        @Test func closedLoopKeepsTheWindowFull() async throws {
            try await withServer(workers: 2, rooms: ["room-1", "room-2"]) { _, port in
                var closed = configuration(port: port)
                closed.mode = .closed
                closed.clients = 10
                closed.rooms = 2
                closed.window = 4
                let report = try await LoadGenerator.run(closed)
                #expect(report.sent > 100)
                #expect(report.delivered == report.expected)
            }
        }

        @Test func missingRoomsAreReported() async throws {
            try await withServer(workers: 1, rooms: []) { _, port in
                await #expect(throws: BenchError.self) { _ = try await LoadGenerator.run(configuration(port: port)) }
            }
        }

        @Test func invalidScenariosAreRejected() {
            var configuration = BenchConfiguration()
            configuration.payload = 8
            #expect(throws: BenchError.self) { try configuration.validated() }
            configuration = BenchConfiguration()
            configuration.rooms = configuration.clients + 1
            #expect(throws: BenchError.self) { try configuration.validated() }
        }
    }
}

/// The Redis (RESP3) and NATS framing the load generator relies on, checked byte for byte.
@Suite struct RelayWireTests {
    private func events(_ wire: RelayWire, _ text: String) -> (events: [String], consumed: Int, replies: String) {
        var out: [String] = []
        var replies: [UInt8] = []
        let bytes = Array(text.utf8)
        let consumed = bytes.withUnsafeBytes { raw in
            wire.parse(raw, replies: &replies) { event in
                switch event {
                case .ready: out.append("ready")
                case .message(let data): out.append("message:" + String(decoding: data, as: UTF8.self))
                case .failure(let text): out.append("failure:" + text)
                }
            }
        }
        return (out, consumed, String(decoding: replies, as: UTF8.self))
    }

    @Test func redisHelloSubscribeAndPush() {
        let hello = "%2\r\n$6\r\nserver\r\n$5\r\nredis\r\n$5\r\nproto\r\n:3\r\n"
        let subscribed = ">3\r\n$9\r\nsubscribe\r\n$6\r\nroom-1\r\n:1\r\n"
        let message = ">3\r\n$7\r\nmessage\r\n$6\r\nroom-1\r\n$5\r\nhello\r\n"
        let published = ":4\r\n"
        let parsed = events(.redis, hello + subscribed + message + published + ">3\r\n$7\r\nmess")
        #expect(parsed.events == ["ready", "message:hello"])
        #expect(parsed.consumed == (hello + subscribed + message + published).utf8.count)
        #expect(events(.redis, "-ERR unknown command\r\n").events == ["failure:ERR unknown command"])
    }

    @Test func redisPublishEncoding() {
        var out: [UInt8] = []
        Array("hi".utf8).withUnsafeBytes { RelayWire.redis.appendPublish(room: "room-1", payload: $0, to: &out) }
        #expect(String(decoding: out, as: UTF8.self) == "*3\r\n$7\r\nPUBLISH\r\n$6\r\nroom-1\r\n$2\r\nhi\r\n")
    }

    @Test func natsInfoMessagesAndPing() {
        let text = "INFO {\"server_id\":\"x\"}\r\nPONG\r\nMSG room-1 1 5\r\nhello\r\nPING\r\nMSG room-1 1 3\r\nab"
        let parsed = events(.nats, text)
        #expect(parsed.events == ["ready", "message:hello"])
        #expect(parsed.replies == "PONG\r\n")
        #expect(parsed.consumed == text.utf8.count - "MSG room-1 1 3\r\nab".utf8.count)
        var out: [UInt8] = []
        Array("hi".utf8).withUnsafeBytes { RelayWire.nats.appendPublish(room: "room-1", payload: $0, to: &out) }
        #expect(String(decoding: out, as: UTF8.self) == "PUB room-1 2\r\nhi\r\n")
    }

    @Test func ghostFramesMatchTheCodec() {
        var out: [UInt8] = []
        Array("hi".utf8).withUnsafeBytes { RelayWire.ghost.appendPublish(room: "lobby", payload: $0, to: &out) }
        #expect(out == ClientWire.broadcast(Array("hi".utf8)).encodedFrame())
        let frames = ServerWire.joined(clientID: UUID(), roomID: "lobby").encodedFrame()
            + ServerWire.ping.encodedFrame()
            + ServerWire.broadcast(senderID: UUID(), data: Array("yo".utf8)).encodedFrame()
        var replies: [UInt8] = []
        var seen: [String] = []
        let consumed = frames.withUnsafeBytes { raw in
            RelayWire.ghost.parse(raw, replies: &replies) { event in
                if case .message(let data) = event { seen.append(String(decoding: data, as: UTF8.self)) } else if case .ready = event { seen.append("ready") }
            }
        }
        #expect(consumed == frames.count)
        #expect(seen == ["ready", "yo"])
        #expect(replies == ClientWire.pong.encodedFrame())
    }
}

extension Relay {
    /// `--target redis|nats` end to end: against the real server when it is installed, and
    /// against `PubSubStandIn` when it is not (so `make test` needs neither).
    @Suite struct BenchPeerTargetTests {
        @Test(arguments: [BenchTarget.redis, .nats])
        func peerTargetCountsEveryDelivery(_ target: BenchTarget) async throws {
            let peer = try PeerServer.start(target)
            defer { peer.stop() }
            var configuration = smallBenchRun(port: peer.port, clients: 12, rooms: 3, rate: 40)
            configuration.target = target
            configuration.serverPID = peer.pid
            let report = try await LoadGenerator.run(configuration)
            #expect(report.sent > 0)
            #expect(report.expected == report.sent * 3)  // four subscribers per room: three others each
            #expect(report.delivered == report.expected)
            #expect(report.lost == 0 && report.duplicated == 0 && report.reordered == 0)
            #expect(report.serverCPUSeconds != nil)
        }
    }
}

/// A short open-loop run on two threads (about 1.5 s with warm-up and drain), measuring this
/// process's CPU unless the caller names another server.
func smallBenchRun(port: UInt16, clients: Int, rooms: Int, rate: Double) -> BenchConfiguration {
    var configuration = BenchConfiguration()
    configuration.address = "127.0.0.1:\(port)"
    configuration.clients = clients
    configuration.rooms = rooms
    configuration.rate = rate
    configuration.duration = .milliseconds(800)
    configuration.warmup = .milliseconds(200)
    configuration.drain = .milliseconds(500)
    configuration.threads = 2
    configuration.serverPID = getpid()
    return configuration
}

/// A Redis or NATS server for a test: the installed one on an ephemeral port, or the stand-in.
struct PeerServer {
    let port: UInt16
    let pid: Int32
    let stop: () -> Void

    static func start(_ target: BenchTarget) throws -> PeerServer {
        let name = target == .redis ? "redis-server" : "nats-server"
        // GHOSTSYNC_PEER_STANDIN=1 uses the stand-in even where the real server is installed.
        let forceStandIn = ProcessInfo.processInfo.environment["GHOSTSYNC_PEER_STANDIN"] != nil
        if !forceStandIn, let executable = findExecutable(name) {
            let port = try freePort()
            let arguments = target == .redis
                ? ["--port", "\(port)", "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--protected-mode", "no"]
                : ["-a", "127.0.0.1", "-p", "\(port)"]
            // posix_spawn, not Foundation's Process: its waitUntilExit spins forever here.
            let server = try Subprocess(name, arguments, absolute: executable)
            try waitUntilListening(port)
            return PeerServer(port: port, pid: server.pid) {
                server.signal(SIGTERM)
                _ = try? server.wait()
            }
        }
        let standIn = try PubSubStandIn(target == .redis ? .redis : .nats)
        return PeerServer(port: standIn.port, pid: getpid()) { standIn.stop() }
    }

    private static func findExecutable(_ name: String) -> String? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        return path.split(separator: ":").map { "\($0)/\(name)" }.first { access($0, X_OK) == 0 }
    }

    private static func freePort() throws -> UInt16 {
        let listener = try Listener(bindingTo: SocketAddress(parsing: "127.0.0.1:0"))
        defer { listener.close() }
        return listener.address.port
    }

    /// Polls until something accepts on `port` (the server is a separate process: no event to await).
    private static func waitUntilListening(_ port: UInt16) throws {
        let address = try SocketAddress(parsing: "127.0.0.1:\(port)")
        for _ in 0..<500 {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            let connected = address.withSockAddr { connect(fd, $0, $1) } == 0
            close(fd)
            if connected { return }
            usleep(10_000)
        }
        throw TimedOut(what: "a server listening on port \(port)")
    }
}
