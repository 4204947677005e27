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
                #expect(object?["transport"] as? String == "tcp")
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
                ghostsync_cluster_messages_total{worker="1",direction="out"} 40
                ghostsync_cluster_messages_total{direction="in",worker="1"} 41
                ghostsync_cluster_drops_total{worker="0"} 2
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
            second.clusterMessagesOut = 40
            second.clusterMessagesIn = 41
            first.clusterDrops = 2
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

        /// `--transport ws`: the same accounting with every client a WebSocket (handshake, masked
        /// frames, relay Pings answered), on two workers so some clients are handed off, open and
        /// closed loop.
        @Test(arguments: [BenchMode.open, .closed])
        func webSocketClientsCountEveryDelivery(_ mode: BenchMode) async throws {
            let rooms = (1...4).map { "room-\($0)" }
            // Pings every 200 ms: an unanswered one would end the connection, and the run with it.
            let configure = { (builder: ShardedServerBuilder) in builder.webSocket(bind: "127.0.0.1:0").pingInterval(.milliseconds(200)) }
            try await withServer(workers: 2, rooms: rooms, configure: configure) { handle, port in
                var run = configuration(port: port)
                run.transport = .webSocket
                run.webSocketAddress = try #require(handle.webSocketAddress).description
                run.mode = mode
                let report = try await LoadGenerator.run(run)
                #expect(report.transport == .webSocket)
                #expect(report.sent > 0 && report.delivered > 0)
                #expect(report.expected == report.sent * 4)
                #expect(report.delivered == report.expected)
                #expect(report.lost == 0 && report.duplicated == 0 && report.reordered == 0)
                let object = try JSONSerialization.jsonObject(with: Data(report.json.utf8)) as? [String: Any]
                #expect(object?["transport"] as? String == "ws")
                #expect(object?["delivered"] as? Int == report.delivered)
                #expect(report.table.contains("ghost over WebSocket"))
            }
        }

        /// A refused upgrade (here: an Origin the relay does not allow) fails the run at once,
        /// saying why, instead of waiting for joins that never come.
        @Test func refusedWebSocketHandshakeFailsTheRun() async throws {
            var settings = WebSocketConfiguration(bindAddress: "127.0.0.1:0")
            settings.allowedOrigins = ["https://game.example.com"]
            try await withServer(workers: 1, rooms: ["room-1"], configure: { $0.webSocket(settings) }) { handle, port in
                var run = smallBenchRun(port: port, clients: 3, rooms: 1, rate: 10)
                run.transport = .webSocket
                run.webSocketAddress = try #require(handle.webSocketAddress).description
                let started = ContinuousClock.now
                do {
                    _ = try await LoadGenerator.run(run)
                    Issue.record("the run should have failed")
                } catch let error as BenchError {
                    #expect(error.description.contains("WebSocket handshake"))
                    #expect(error.description.contains("403"))
                }
                #expect(ContinuousClock.now - started < .seconds(10))
            }
        }

        @Test func webSocketTransportIsForGhostOnlyAndNeedsItsAddress() {
            var configuration = BenchConfiguration()
            configuration.transport = .webSocket
            #expect(throws: BenchError.self) { try configuration.validated() }  // no --ws-addr
            configuration.webSocketAddress = "127.0.0.1:7780"
            #expect(throws: Never.self) { try configuration.validated() }
            #expect(configuration.clientAddress == "127.0.0.1:7780")
            for target in [BenchTarget.redis, .nats] {
                configuration.target = target
                do {
                    _ = try configuration.validated()
                    Issue.record("\(target) over WebSocket should be refused")
                } catch {
                    #expect(error.description.contains("--target ghost only"))
                }
            }
            #expect(BenchConfiguration().clientAddress == "127.0.0.1:7777")
        }

        /// Several relays: the members of every room alternate over them, so each room has
        /// members on every relay (client i mod N would put all of a room on one relay whenever
        /// the rooms are a multiple of N), and the clients split evenly.
        @Test func severalRelaysShareEveryRoom() throws {
            var configuration = BenchConfiguration()
            configuration.clients = 1000
            configuration.rooms = 100
            #expect(configuration.addresses == ["127.0.0.1:7777"] && configuration.address == "127.0.0.1:7777")
            #expect((0..<1000).allSatisfy { configuration.relay(of: $0) == 0 })
            configuration.addresses = ["127.0.0.1:7001", "127.0.0.1:7002"]
            #expect(configuration.clientAddresses == ["127.0.0.1:7001", "127.0.0.1:7002"])
            var perRelay = [0, 0]
            var perRoomAndRelay = [[Int]](repeating: [0, 0], count: 100)
            for client in 0..<1000 {
                let relay = configuration.relay(of: client)
                perRelay[relay] += 1
                perRoomAndRelay[configuration.room(of: client)][relay] += 1
            }
            #expect(perRelay == [500, 500])
            #expect(perRoomAndRelay.allSatisfy { $0 == [5, 5] })
            // Three relays, rooms of 4 or 3 members: every room has members on three relays at most
            // one apart.
            configuration.addresses = ["127.0.0.1:7001", "127.0.0.1:7002", "127.0.0.1:7003"]
            configuration.clients = 11
            configuration.rooms = 3
            for room in 0..<3 {
                let relays = (0..<11).filter { configuration.room(of: $0) == room }.map(configuration.relay(of:))
                #expect(Set(relays) == [0, 1, 2])
            }
            #expect(throws: Never.self) { try configuration.validated() }
            // Setting the one address replaces the list; an empty list or too many is refused.
            configuration.address = "127.0.0.1:7009"
            #expect(configuration.addresses == ["127.0.0.1:7009"])
            configuration.addresses = []
            #expect(throws: BenchError.self) { try configuration.validated() }
            configuration.addresses = (0..<65).map { "127.0.0.1:\(7000 + $0)" }
            #expect(throws: BenchError.self) { try configuration.validated() }
            // WebSocket clients spread over the WebSocket addresses the same way.
            configuration = BenchConfiguration()
            configuration.transport = .webSocket
            configuration.webSocketAddresses = ["127.0.0.1:7780", "127.0.0.1:7781"]
            configuration.clients = 4
            configuration.rooms = 2
            #expect(configuration.clientAddresses == ["127.0.0.1:7780", "127.0.0.1:7781"])
            #expect((0..<4).map(configuration.relay(of:)) == [0, 0, 1, 1])
            configuration.webSocketAddresses = ["127.0.0.1:7780", "nonsense"]
            #expect(throws: BenchError.self) { try configuration.validated() }
        }

        /// `ghost-sync bench --addr A --addr B --server-pid P --server-pid Q --json`, against two
        /// relays that are not in a cluster: the clients split over both, every delivery between
        /// members of one relay arrives and is counted as same-relay, none crosses, and the CPU
        /// of both PIDs is summed. One --addr keeps the JSON line as it was.
        @Test func benchCommandTakesSeveralRelaysAndServerPIDs() async throws {
            let rooms = (1...2).map { "room-\($0)" }
            try await withServer(workers: 1, rooms: rooms) { _, first in
                try await withServer(workers: 1, rooms: rooms) { _, second in
                    let common = ["bench", "--clients", "8", "--rooms", "2", "--rate", "40", "--duration", "800ms", "--warmup", "200ms", "--json"]
                    let pid = "\(getpid())"
                    let split = try Subprocess("ghost-sync", common + [
                        "--addr", "127.0.0.1:\(first)", "--addr", "127.0.0.1:\(second)", "--server-pid", pid, "--server-pid", pid])
                    #expect(try split.wait(timeout: .seconds(30)) == 0, "\(split.stderrText)")
                    let object = try #require(try JSONSerialization.jsonObject(with: Data(split.remainingOutput().utf8)) as? [String: Any])
                    #expect(object["relays"] as? [String] == ["127.0.0.1:\(first)", "127.0.0.1:\(second)"])
                    let sent = try #require(object["sent"] as? Int)
                    #expect(sent > 0)
                    #expect(object["expected"] as? Int == sent * 3)  // four members per room, two on each relay
                    #expect(object["delivered"] as? Int == sent)  // only the one on the sender's relay
                    #expect(object["delivered_same_relay"] as? Int == sent)
                    #expect(object["delivered_cross_relay"] as? Int == 0)
                    #expect((object["latency_same_relay_us"] as? [String: Any])?["p99"] is Int)
                    #expect((object["latency_cross_relay_us"] as? [String: Any])?["p50"] as? Int == 0)
                    let each = try #require(object["server_cpu_seconds_each"] as? [Double])
                    #expect(each.count == 2)
                    let total = try #require(object["server_cpu_seconds"] as? Double)
                    #expect(abs(total - each.reduce(0, +)) < 1e-9)
                    #expect(object["nats_in_msgs"] == nil)

                    let single = try Subprocess("ghost-sync", common + ["--addr", "127.0.0.1:\(first)", "--server-pid", pid])
                    #expect(try single.wait(timeout: .seconds(30)) == 0, "\(single.stderrText)")
                    let line = try #require(try JSONSerialization.jsonObject(with: Data(single.remainingOutput().utf8)) as? [String: Any])
                    #expect(line["delivered"] as? Int == line["expected"] as? Int)
                    for key in ["relays", "delivered_same_relay", "latency_cross_relay_us", "server_cpu_seconds_each", "nats_in_msgs"] {
                        #expect(line[key] == nil, "\(key)")
                    }
                }
            }
        }

        @Test func varzGivesNATSMessageCounts() {
            let text = """
                HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n{
                  "server_id": "N1",
                  "cluster": {},
                  "in_msgs": 1234,
                  "out_msgs":56,
                  "in_bytes": 9
                }
                """
            #expect(NATSMonitor.parse(text) == NATSMessageCounts(inMessages: 1234, outMessages: 56))
            #expect(NATSMonitor.parse("{\"in_msgs\": 1}") == nil)
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

/// The load generator's WebSocket client: its frames as the relay's own decoder reads them, the
/// server's frames at every split, and the handshake checks.
@Suite struct WebSocketBenchTests {
    private let key: UInt32 = 0x9E37_79B9

    /// Every message the relay's decoder gets out of `bytes` (which it unmasks in place).
    private func decodedByTheRelay(_ bytes: [UInt8]) throws -> [[UInt8]] {
        var decoder = WebSocketFrameDecoder(maxMessageSize: 1 << 20)
        var messages: [[UInt8]] = []
        var copy = bytes
        let action = try copy.withUnsafeMutableBytes { raw in
            try decoder.feed(raw) { event in
                if case .message(let opcode, let payload) = event, opcode == .binary { messages.append(Array(payload)) }
                return .proceed
            }
        }
        #expect(action == .proceed && !decoder.hasPendingBytes)
        return messages
    }

    @Test(arguments: [20, 64, 114, 200, 65_523, 70_000])
    func publishesAreMaskedFramesTheRelayDecodes(payloadSize: Int) throws {
        // 114 B of data is a 126-byte ghost payload: the first with a 4-byte length; 65,523 B
        // the last; 70,000 B needs the 10-byte one.
        let data = (0..<payloadSize).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ 3) }
        var out: [UInt8] = []
        data.withUnsafeBytes { RelayWire.ghostWebSocket.appendPublish(room: "room-1", payload: $0, maskingKey: key, to: &out) }
        data.withUnsafeBytes { RelayWire.ghostWebSocket.appendPublish(room: "room-1", payload: $0, maskingKey: key, to: &out) }
        let expected = Array(ClientWire.broadcast(data).encodedFrame().dropFirst(4))
        let headerSize = expected.count < 126 ? 2 : expected.count <= 0xFFFF ? 4 : 10
        #expect(out.count == 2 * (headerSize + 4 + expected.count))
        #expect(out[0] == 0x82 && out[1] & 0x80 != 0)
        // The key on the wire, then the masked bytes.
        #expect(Array(out[headerSize..<(headerSize + 4)]) == [0xB9, 0x79, 0x37, 0x9E])
        #expect(out[(headerSize + 4)...].prefix(4).elementsEqual([4 ^ 0xB9, 0x79, 0x37, 0x9E]))
        #expect(try decodedByTheRelay(out) == [expected, expected])
    }

    @Test func joinIsOneMaskedFrame() throws {
        let join = RelayWire.ghostWebSocket.handshake(room: "lobby", maskingKey: key)
        #expect(try decodedByTheRelay(join) == [Array(ClientWire.joinRoom("lobby").encodedFrame().dropFirst(4))])
        #expect(RelayWire.ghost.handshake(room: "lobby") == ClientWire.joinRoom("lobby").encodedFrame())
    }

    /// What the generator makes of a stream of server frames, fed in two reads split at `split`
    /// (keeping the unconsumed tail, as `BenchThread.receive` does).
    private func events(_ stream: [UInt8], split: Int) -> (events: [String], replies: [UInt8], left: Int) {
        var seen: [String] = []
        var replies: [UInt8] = []
        var input: [UInt8] = []
        for chunk in [stream[..<split], stream[split...]] {
            input += chunk
            let consumed = input.withUnsafeBytes { raw in
                RelayWire.ghostWebSocket.parse(raw, maskingKey: key, replies: &replies) { event in
                    switch event {
                    case .ready: seen.append("ready")
                    case .message(let data): seen.append("message \(data.count) \(data.first ?? 0)")
                    case .failure(let text): seen.append("failure " + text)
                    }
                }
            }
            input.removeFirst(consumed)
        }
        return (seen, replies, input.count)
    }

    @Test func serverFramesAreParsedAtEverySplit() throws {
        func frame(_ message: ServerWire) -> [UInt8] {
            WebSocketFrame.serverFrame(opcode: .binary, payload: message.encodedFrame().dropFirst(4))
        }
        let sender = UUID()
        let small = frame(.broadcast(senderID: sender, data: [1] + Array(repeating: 0, count: 63)))   // 2-byte header
        let medium = frame(.broadcast(senderID: sender, data: [2] + Array(repeating: 0, count: 299)))  // 4-byte header
        let large = frame(.broadcast(senderID: sender, data: [3] + Array(repeating: 0, count: 69_999)))  // 10-byte header
        #expect(small[1] < 126 && medium[1] == 126 && large[1] == 127)
        let head = frame(.joined(clientID: sender, roomID: "room-1")) + frame(.ping) + small + medium
        let stream = head + large + small
        let want = ["ready", "message 64 1", "message 300 2", "message 70000 3", "message 64 1"]
        // Every split through the small frames and the large one's header, then a sample of it.
        var splits = Array(0...(head.count + 12))
        splits += Array(stride(from: head.count + 12, to: stream.count, by: 997)) + Array((stream.count - 80)...stream.count)
        for split in splits {
            let parsed = events(stream, split: split)
            #expect(parsed.events == want, "split at \(split)")
            #expect(parsed.left == 0, "split at \(split)")
            // The relay's Ping is answered with one masked ClientWire Pong.
            #expect(try decodedByTheRelay(parsed.replies) == [ClientWire.pong.encodedFrame().dropFirst(4).map { $0 }], "split at \(split)")
        }
    }

    @Test func controlFramesFromTheRelay() throws {
        // A WebSocket Ping gets a masked Pong with its payload; a Close fails the run, saying why.
        let ping = WebSocketFrame.serverFrame(opcode: .ping, payload: [7, 8, 9])
        let parsed = events(ping, split: 1)
        #expect(parsed.events.isEmpty && parsed.left == 0)
        #expect(parsed.replies.count == 2 + 4 + 3 && parsed.replies[0] == 0x8A && parsed.replies[1] == 0x83)
        var unmasked = Array(parsed.replies[6...])
        unmasked.withUnsafeMutableBytes { WebSocketFrame.unmask($0, key: key) }
        #expect(unmasked == [7, 8, 9])
        let close = WebSocketFrame.serverFrame(opcode: .close, payload: WebSocketFrame.closePayload(code: 1008, reason: "too many frames"))
        #expect(events(close, split: 0).events == ["failure the relay closed the WebSocket (code 1008: too many frames)"])
        let text = WebSocketFrame.serverFrame(opcode: .text, payload: Array("hi".utf8))
        #expect(events(text, split: 2).events.first?.hasPrefix("failure unexpected WebSocket frame") == true)
    }

    @Test func handshakeRequestAndAnswerChecks() throws {
        // RFC 6455 §1.3's sample nonce and accept key.
        let upgrade = WebSocketUpgrade(nonce: Array("the sample nonce".utf8))
        #expect(upgrade.key == "dGhlIHNhbXBsZSBub25jZQ==")
        #expect(upgrade.expectedAccept == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
        // The relay's own handshake code accepts the request; its answer passes every check,
        // split anywhere, with frames right behind it.
        let request = upgrade.request(host: "127.0.0.1:7780")
        let head = try #require(request.withUnsafeBytes { HTTPRequestHead($0) })
        guard case .upgrade(let response, let subprotocol, _) = WebSocketHandshake.decide(head, configuration: WebSocketConfiguration(bindAddress: "127.0.0.1:0")) else {
            Issue.record("the relay refused the generator's request")
            return
        }
        #expect(subprotocol == "ghost-sync.v1")
        let withFrame = response + WebSocketFrame.serverFrame(opcode: .binary, payload: [0, 0, 0, 0])
        for end in 0..<response.count {
            #expect(withFrame.prefix(end).withUnsafeBytes { upgrade.check($0) } == .incomplete)
        }
        #expect(withFrame.withUnsafeBytes { upgrade.check($0) } == .upgraded(headBytes: response.count))
        func check(_ text: String) -> WebSocketUpgrade.Outcome { Array(text.utf8).withUnsafeBytes { upgrade.check($0) } }
        let good = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nSec-WebSocket-Protocol: ghost-sync.v1\r\n"
        #expect(check(good + "\r\n") == .upgraded(headBytes: good.utf8.count + 2))
        func failure(_ text: String) -> String? { if case .failed(let reason) = check(text) { reason } else { nil } }
        #expect(failure(good.replacingOccurrences(of: "xOo=", with: "xOx=") + "\r\n")?.contains("wrong Sec-WebSocket-Accept") == true)
        #expect(failure(good.replacingOccurrences(of: "Sec-WebSocket-Protocol: ghost-sync.v1\r\n", with: "") + "\r\n")?.contains("subprotocol (none)") == true)
        #expect(failure(good + "Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n")?.contains("permessage-deflate") == true)
        #expect(failure(good.replacingOccurrences(of: "Upgrade: websocket\r\n", with: "") + "\r\n")?.contains("Upgrade: websocket") == true)
        #expect(failure("HTTP/1.1 403 Forbidden\r\nContent-Length: 30\r\n\r\norigin (none) is not allowed\n")
            == "refused: HTTP/1.1 403 Forbidden (origin (none) is not allowed)")
        #expect(failure(String(repeating: "x", count: WebSocketUpgrade.maxHeadBytes + 1))?.contains("no complete HTTP answer") == true)
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

extension Relay {
    /// The load generator against two relays in a cluster over a real nats-server: what
    /// `make cluster-bench` measures, small.
    @Suite(.requiresNATSServer)
    struct ClusterBenchTests {
        /// Every delivery arrives, about half of them across relays; each broadcast costs the
        /// NATS server one message in (the sender's relay publishes it once) and one out (to the
        /// other relay), plus the heartbeats.
        @Test func deliveriesAcrossTwoRelaysAndNATSMessagesPerBroadcast() async throws {
            let nats = try NATSServerProcess.start(jetStream: true)
            defer { nats.stop() }
            let relays = try ["a", "b"].map { node in
                try RelayProcess(["--rooms", "4", "--cluster", nats.clientURL, "--node", node, "--heartbeat-interval", "100ms"])
            }
            try await eventually {
                relays.allSatisfy { (try? $0.metric("ghostsync_cluster_links_up")) == 2 && (try? $0.metric("ghostsync_cluster_nodes")) == 1 }
            }
            var run = smallBenchRun(port: relays[0].relayPort, clients: 20, rooms: 4, rate: 50)
            run.addresses = relays.map(\.relay)
            run.serverPIDs = relays.map(\.process.pid) + [try #require(nats.pid)]
            run.natsMonitorAddresses = ["127.0.0.1:\(nats.monitorPort)"]
            run.metricsAddresses = relays.map(\.metrics)
            let report = try await LoadGenerator.run(run)
            #expect(report.sent > 0)
            #expect(report.expected == report.sent * 4)
            #expect(report.delivered == report.expected)
            #expect(report.lost == 0 && report.duplicated == 0 && report.reordered == 0)
            // Five members per room, alternating: a sender has one or two others on its relay.
            let same = try #require(report.sameRelay)
            let cross = try #require(report.crossRelay)
            #expect(same.delivered + cross.delivered == report.delivered)
            #expect(same.delivered > 0 && cross.delivered > same.delivered)
            #expect(cross.latencyMicroseconds.p50 > 0)
            #expect(report.serverCPUSecondsEach.count == 3)
            // Per relay over the window: one publish per broadcast its clients sent (the
            // heartbeats aside), none dropped, and what the other relay published received.
            #expect(report.relayCounters.count == 2)
            for (relay, counters) in report.relayCounters.enumerated() {
                let perFrame = Double(counters.clusterMessagesOut) / Double(max(1, counters.framesIn))
                #expect(counters.framesIn > 0 && perFrame > 0.9 && perFrame < 1.2, "relay \(relay): \(counters)")
                #expect(counters.clusterDrops == 0)
                #expect(counters.clusterMessagesIn > 0)
            }
            let perBroadcast = try #require(report.natsMessagesPerBroadcast)
            // 100 ms heartbeats from two relays (heard by three other workers) are the rest.
            #expect(perBroadcast.in > 0.9 && perBroadcast.in < 1.2, "\(perBroadcast)")
            #expect(perBroadcast.out > 0.9 && perBroadcast.out < 1.3, "\(perBroadcast)")
            let object = try JSONSerialization.jsonObject(with: Data(report.json.utf8)) as? [String: Any]
            #expect(object?["nats_in_msgs"] as? Int == report.natsMessages?.inMessages)
            #expect(object?["delivered_cross_relay"] as? Int == cross.delivered)
            let counters = try #require(object?["relay_counters"] as? [[String: Any]])
            #expect(counters.map { $0["nats_published"] as? Int } == report.relayCounters.map(\.clusterMessagesOut))
            #expect(report.table.contains("cross relay"))
            #expect(report.table.contains("NATS published"))
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
