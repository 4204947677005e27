import Glibc
import Testing
@testable import GhostSync
@testable import GhostSyncRelay

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// A running `ghost-sync relay` child process on ephemeral loopback ports.
private final class RelayProcess {
    let process: Subprocess
    let relay: String
    let control: String
    let metrics: String

    init(_ extra: [String] = []) throws {
        process = try Subprocess("ghost-sync", ["relay", "--bind", "127.0.0.1:0", "--control", "127.0.0.1:0", "--metrics", "127.0.0.1:0", "--workers", "2"] + extra)
        let line = try process.readLine()
        let fields = Dictionary(uniqueKeysWithValues: line.split(separator: " ").dropFirst(2).compactMap { field -> (String, String)? in
            let parts = field.split(separator: "=", maxSplits: 1)
            return parts.count == 2 ? (String(parts[0]), String(parts[1])) : nil
        })
        guard line.hasPrefix("ghost-sync ready"), let relay = fields["relay"], let control = fields["control"], let metrics = fields["metrics"] else {
            throw TimedOut(what: "the ready line, got: \(line)")
        }
        self.relay = relay
        self.control = control
        self.metrics = metrics
    }

    var relayPort: UInt16 { UInt16(relay.split(separator: ":").last!)! }

    func control(_ lines: String...) throws -> [String] {
        try ControlClient(address: control).request(lines)
    }

    /// GET `path` on the metrics endpoint: status and body.
    func get(_ path: String) throws -> (Int, String) {
        let client = try RawClient(port: UInt16(metrics.split(separator: ":").last!)!)
        try client.sendRaw(Array("GET \(path) HTTP/1.1\r\nHost: x\r\n\r\n".utf8))
        let response = try client.readAll()
        let status = Int(response.split(separator: " ").dropFirst().first ?? "") ?? 0
        let body = response.components(separatedBy: "\r\n\r\n").dropFirst().joined(separator: "\r\n\r\n")
        return (status, body)
    }

    /// The value of one sample line (`name{labels} value`), summed over matching lines.
    func metric(_ prefix: String) throws -> Double {
        let (_, body) = try get("/metrics")
        return body.split(separator: "\n").filter { $0.hasPrefix(prefix) }.compactMap { Double($0.split(separator: " ").last!) }.reduce(0, +)
    }
}

extension Relay {
    @Suite struct RelayExecutableTests {
        @Test func controlProtocol() throws {
            let relay = try RelayProcess()
            #expect(try relay.control("LIST_ROOMS") == ["OK", "deathmatch: 0 clients", "duel: 0 clients", "lobby: 0 clients"])
            #expect(try relay.control("CREATE_ROOM", "arena") == ["OK"])
            #expect(try relay.control("CREATE_ROOM", "arena").first == "ERROR")
            #expect(try relay.control("ROOM_META_SET", "arena", "map", "dust2") == ["OK"])
            #expect(try relay.control("ROOM_META_GET", "arena", "map") == ["OK", "dust2"])
            #expect(try relay.control("ROOM_META_GET", "arena", "nope").first == "ERROR")
            #expect(try relay.control("ROOM_CLIENTS", "arena") == ["OK"])
            #expect(try relay.control("ROOM_CLIENTS", "nowhere").first == "ERROR")
            #expect(try relay.control("DELETE_ROOM", "arena") == ["OK"])
            #expect(try relay.control("DELETE_ROOM", "arena").first == "ERROR")
            #expect(try relay.control("FLY_TO_THE_MOON") == ["ERROR", "unknown command: FLY_TO_THE_MOON"])
            #expect(try relay.control("CREATE_ROOM") == ["ERROR", "missing argument: room ID"])
            let metrics = try relay.control("METRICS")
            #expect(metrics.first == "OK")
            #expect(Set(metrics.dropFirst().map { String($0.split(separator: "=").first!) }) == ["connections", "rooms", "clients", "uptime"])
            // Malformed frames get an ERROR, never a crash: invalid UTF-8, then an oversized length.
            let raw = try RawClient(port: UInt16(relay.control.split(separator: ":").last!)!)
            try raw.sendRaw([0, 0, 0, 2, 0xc3, 0x28])
            #expect(try raw.readFrameText() == "ERROR\nrequest is not valid UTF-8")
            try raw.sendRaw([0x7f, 0xff, 0xff, 0xff])
            #expect(try raw.readFrameText().hasPrefix("ERROR\nrequest of"))
            #expect(try raw.waitForClose())
            #expect(try relay.control("LIST_ROOMS").first == "OK")  // still serving
        }

        @Test func metricsMoveWithTraffic() async throws {
            let relay = try RelayProcess()
            let (health, ok) = try relay.get("/healthz")
            #expect(health == 200 && ok == "ok\n")
            #expect(try relay.get("/nope").0 == 404)
            let before = try relay.metric("ghostsync_frames_in_total")
            #expect(try relay.metric("ghostsync_connections_total") == 0)
            let alice = try await Client.local(relay.relayPort)
            let bob = try await Client.local(relay.relayPort)
            _ = try await alice.joined("lobby")
            _ = try await bob.joined("lobby")
            for index in 0..<10 { try await alice.broadcast([UInt8(index)]) }
            try await bob.sync()  // the ten broadcasts have been delivered
            try await eventually { (try? relay.metric("ghostsync_frames_in_total")) ?? 0 >= before + 13 }
            #expect(try relay.metric("ghostsync_connections_total") == 2)
            #expect(try relay.metric("ghostsync_joins_total") == 2)
            #expect(try relay.metric("ghostsync_clients") == 2)
            #expect(try relay.metric("ghostsync_connections{") == 2)
            #expect(try relay.metric("ghostsync_frames_out_total") >= 11)  // ten broadcasts and a PlayerJoined
            #expect(try relay.metric("ghostsync_rooms") == 3)
            #expect(try relay.metric("ghostsync_loop_iteration_seconds_count") > 0)
            alice.close()
            try await eventually { (try? relay.metric("ghostsync_disconnects_total{worker")) ?? 0 >= 1 }
            let (_, body) = try relay.get("/metrics")
            #expect(body.contains("# TYPE ghostsync_frames_in_total counter"))
            #expect(body.contains("# TYPE ghostsync_loop_iteration_seconds histogram"))
            #expect(body.contains("reason=\"connection_closed\""))
        }

        @Test func joinAndSendBetweenProcesses() throws {
            let relay = try RelayProcess()
            let joiner = try Subprocess("ghost-sync", ["join", "lobby", "--addr", relay.relay])
            let joined = try joiner.readLine()
            #expect(joined.hasPrefix("joined lobby as "))
            let sender = try Subprocess("ghost-sync", ["send", "lobby", "hello from a script", "--addr", relay.relay])
            #expect(try sender.wait() == 0)
            let senderJoined = try joiner.readLine()
            #expect(senderJoined.hasPrefix("+") && senderJoined.hasSuffix(" joined"))
            let message = try joiner.readLine()
            #expect(message.hasSuffix(": hello from a script"))
            #expect(try joiner.readLine().hasSuffix(" left"))
            let json = try Subprocess("ghost-sync", ["send", "lobby", "second", "--addr", relay.relay, "--json"])
            #expect(try json.wait() == 0)
            #expect(json.remainingOutput().contains("\"event\":\"joined\""))
            relay.process.signal(SIGTERM)
            #expect(try relay.process.wait() == 0)
            #expect(try joiner.wait() == 0)  // the relay closed the connection cleanly
        }

        @Test func adminSubcommands() throws {
            let relay = try RelayProcess(["--room", "alpha", "--room", "beta", "--rooms", "2"])
            let rooms = try Subprocess("ghost-sync", ["admin", "rooms", "--control", relay.control])
            #expect(try rooms.wait() == 0)
            #expect(rooms.remainingOutput() == "alpha: 0 clients\nbeta: 0 clients\nroom-1: 0 clients\nroom-2: 0 clients\n")
            #expect(try Subprocess("ghost-sync", ["admin", "create", "gamma", "--control", relay.control]).wait() == 0)
            #expect(try Subprocess("ghost-sync", ["admin", "create", "gamma", "--control", relay.control]).wait() == 1)
            #expect(try Subprocess("ghost-sync", ["admin", "meta", "set", "gamma", "mode", "ctf", "--control", relay.control]).wait() == 0)
            let get = try Subprocess("ghost-sync", ["admin", "meta", "get", "gamma", "mode", "--control", relay.control])
            #expect(try get.wait() == 0)
            #expect(get.remainingOutput() == "ctf\n")
            #expect(try Subprocess("ghost-sync", ["admin", "delete", "gamma", "--control", relay.control]).wait() == 0)
            let metrics = try Subprocess("ghost-sync", ["admin", "metrics", "--control", relay.control])
            #expect(try metrics.wait() == 0)
            #expect(metrics.remainingOutput().contains("rooms=4"))
        }

        @Test func badFlagsExitWithUsage() throws {
            for arguments in [["relay", "--workers", "zero"], ["relay", "--idle-timeout", "soon"], ["relay", "--bind", "nonsense"],
                              ["relay", "--cpus", "3-1"], ["relay", "--log-level", "loud"], ["relay", "--frobnicate"]] {
                let process = try Subprocess("ghost-sync", arguments)
                #expect(try process.wait() == 64, "\(arguments)")
                #expect(process.stderrText.contains("Error"), "\(arguments)")
            }
        }

        @Test func portInUseFailsCleanly() throws {
            let holder = try RawServer()
            let process = try Subprocess("ghost-sync", ["relay", "--bind", "127.0.0.1:\(holder.port)", "--no-control", "--no-metrics"])
            #expect(try process.wait() == 1)
            #expect(process.stderrText.contains("port is in use"))
            let control = try Subprocess("ghost-sync", ["relay", "--bind", "127.0.0.1:0", "--control", "127.0.0.1:\(holder.port)", "--no-metrics"])
            #expect(try control.wait() == 1)
            #expect(control.stderrText.contains("port is in use"))
        }

        @Test func sigtermUnderLoadClosesCleanlyAndFast() async throws {
            let relay = try RelayProcess(["--log-format", "json"])
            var clients: [Client] = []
            for _ in 0..<20 {
                let client = try await Client.local(relay.relayPort)
                _ = try await client.joined("lobby")
                clients.append(client)
            }
            // Every client keeps receiving (as a real one does) until its stream ends.
            let endings = clients.map { client in
                Task { () -> Bool in
                    do {
                        while try await client.recv() != nil {}
                        return true
                    } catch {
                        return false
                    }
                }
            }
            let senders = clients
            // Paced load (each client 200 messages a second, 19 recipients each): the receivers
            // keep up, as live game clients do. A flood they cannot drain would leave them seconds
            // behind, and a close after the grace period is then a reset, by design.
            let load = Task {
                var round = 0
                while !Task.isCancelled && round < 100_000 {
                    for client in senders { try? await client.broadcast([UInt8(round & 0xff)]) }
                    round += 1
                    try? await Task.sleep(for: .milliseconds(5))
                }
            }
            try await Task.sleep(for: .milliseconds(200))  // let the load run (not synchronisation)
            let start = ContinuousClock.now
            relay.process.signal(SIGTERM)
            #expect(try relay.process.wait(timeout: .seconds(5)) == 0)
            #expect(ContinuousClock.now - start < .seconds(2))
            load.cancel()
            for ending in endings {
                #expect(try await within(.seconds(10), "end of stream") { await ending.value }, "a client saw a reset")
            }
            // Logs were JSON lines.
            let lines = relay.process.stderrText.split(separator: "\n").filter { $0.contains("ghost-sync relay started") }
            #expect(lines.count == 1 && lines[0].hasPrefix("{\"ts\":"))
        }
    }
}

extension RawClient {
    /// Reads until the peer closes; the bytes as text.
    func readAll(timeout: Duration = .seconds(10)) throws -> String {
        var bytes: [UInt8] = []
        let deadline = ContinuousClock.now + timeout
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        while ContinuousClock.now < deadline {
            var descriptor = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&descriptor, 1, 100) >= 0 else { break }
            if descriptor.revents == 0 { continue }
            let count = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if count <= 0 { break }
            bytes += chunk[0..<count]
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// One control-protocol frame, as text.
    func readFrameText(timeout: Duration = .seconds(10)) throws -> String {
        var bytes: [UInt8] = []
        let deadline = ContinuousClock.now + timeout
        var chunk = [UInt8](repeating: 0, count: 4096)
        while ContinuousClock.now < deadline {
            if bytes.count >= 4 {
                let length = Int(UInt32(bytes[0]) << 24 | UInt32(bytes[1]) << 16 | UInt32(bytes[2]) << 8 | UInt32(bytes[3]))
                if bytes.count >= 4 + length { return String(decoding: bytes[4..<(4 + length)], as: UTF8.self) }
            }
            var descriptor = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&descriptor, 1, 100) >= 0 else { break }
            if descriptor.revents == 0 { continue }
            let count = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if count <= 0 { break }
            bytes += chunk[0..<count]
        }
        throw TimedOut(what: "a control frame")
    }
}
