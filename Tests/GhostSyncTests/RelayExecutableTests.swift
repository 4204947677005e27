import Glibc
import Testing
@testable import GhostSync
@testable import GhostSyncRelay

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

extension Relay {
    @Suite struct RelayExecutableTests {
        /// Over a real socket, as a script written for the original daemon sees it (every
        /// answer is checked byte for byte in ControlProtocolTests).
        @Test func controlProtocol() throws {
            let relay = try RelayProcess()
            #expect(try relay.controlText("LIST_ROOMS") == "OK\ndeathmatch: 0 clients\nduel: 0 clients\nlobby: 0 clients\n")
            #expect(try relay.controlText("create_room\n arena ") == "OK\nRoom 'arena' created")
            #expect(try relay.controlText("CREATE_ROOM\narena") == "ERROR\nRoom 'arena' already exists")
            #expect(try relay.controlText("ROOM_CLIENTS\narena") == "OK\nClients in 'arena':\n")
            #expect(try relay.controlText("DELETE_ROOM\narena") == "OK\nRoom 'arena' deleted")
            #expect(try relay.controlText("DELETE_ROOM\narena") == "ERROR\nRoom 'arena' not found")
            #expect(try relay.controlText("fly_to_the_moon") == "ERROR\nUnknown command: FLY_TO_THE_MOON")
            #expect(try relay.controlText("CREATE_ROOM") == "ERROR\nMissing argument at position 0")
            #expect(try relay.controlText("METRICS") == "OK\nconnections=0\nrooms=3\nclients=0\nuptime=0hrs")
            let raw = try RawClient(port: UInt16(relay.control.split(separator: ":").last!)!)
            try raw.sendRaw([0, 0, 0, 2, 0xc3, 0x28])
            #expect(try raw.readFrameText() == "ERROR\nInvalid UTF-8")
            // A frame of exactly 1 MiB is answered; one byte more closes the connection unanswered.
            let largest = Array("LIST_ROOMS\n".utf8) + [UInt8](repeating: UInt8(ascii: "x"), count: (1 << 20) - 11)
            try raw.sendRaw(ControlProtocol.frame(String(decoding: largest, as: UTF8.self)))
            #expect(try raw.readFrameText().hasPrefix("OK\ndeathmatch"))
            try raw.sendRaw([0, 0x10, 0, 1])
            raw.expectClosedWithoutAFrame()
            #expect(try relay.controlText("LIST_ROOMS").hasPrefix("OK\n"))  // still serving
        }

        @Test func webSocketPortServesTheDemoAndJoinsTheSameRooms() async throws {
            #expect(try RelayProcess().webSocket == "off")
            let relay = try RelayProcess(["--ws", "127.0.0.1:0"])
            let wsPort = UInt16(relay.webSocket.split(separator: ":").last!)!
            // The embedded files.
            for (path, type) in [("/", "text/html"), ("/ghost-sync.js", "text/javascript"), ("/demo.js", "text/javascript"), ("/demo.css", "text/css"), ("/ghost-sync.d.ts", "application/typescript")] {
                let page = try WebSocketTestClient(port: wsPort)
                try page.sendRaw(Array("GET \(path) HTTP/1.1\r\nHost: x\r\n\r\n".utf8))
                let answer = try page.readHTTPAnswer()
                #expect(answer.status == 200, "\(path)")
                #expect(answer.header("Content-Type")?.hasPrefix(type) == true, "\(path)")
                #expect(!answer.body.isEmpty)
            }
            let browser = try WebSocketTestClient.open(port: wsPort)
            let browserID = try browser.join("lobby")
            let client = try await Client.local(relay.relayPort)
            _ = try await client.joined("lobby")
            try browser.send(.broadcast([1, 2, 3]))
            #expect(try await client.next() == .broadcast(senderID: browserID, data: [1, 2, 3]))
            try await eventually { (try? relay.metric("ghostsync_clients{transport=\"websocket\"}")) == 1 }
            #expect(try relay.metric("ghostsync_clients{transport=\"tcp\"}") == 1)
            #expect(try relay.metric("ghostsync_connections_total{worker=\"0\",transport=\"websocket\"}") + relay.metric("ghostsync_connections_total{worker=\"1\",transport=\"websocket\"}") == 1)
            #expect(try relay.metric("ghostsync_http_responses_total") == 5)
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
            let json = try Subprocess("ghost-sync", ["send", "lobby", "second", "--json"], environment: ["GHOSTSYNC_ADDR": relay.relay])
            #expect(try json.wait() == 0)
            #expect(json.remainingOutput().contains("\"event\":\"joined\""))
            relay.process.signal(SIGTERM)
            #expect(try relay.process.wait() == 0)
            #expect(try joiner.wait() == 1)
            #expect(joiner.stderrText == "Error: the relay closed the connection\n")
        }

        @Test func adminSubcommands() throws {
            let relay = try RelayProcess(["--room", "alpha", "--room", "beta", "--rooms", "2"])
            func admin(_ arguments: String..., environment: [String: String] = [:]) throws -> (status: Int32, output: String, error: String) {
                let process = try Subprocess("ghost-sync", ["admin"] + arguments, environment: environment)
                let status = try process.wait()
                return (status, process.remainingOutput(), process.stderrText)
            }
            let rooms = "alpha: 0 clients\nbeta: 0 clients\nroom-1: 0 clients\nroom-2: 0 clients\n"
            // The endpoint on the subcommand, on `admin` itself, or in the environment.
            #expect(try admin("rooms", "--control", relay.control) == (0, rooms, ""))
            #expect(try admin("--control", relay.control, "rooms") == (0, rooms, ""))
            #expect(try admin("rooms", environment: ["GHOSTSYNC_CONTROL": relay.control]) == (0, rooms, ""))
            // The subcommand's wins over admin's, which wins over the environment's.
            #expect(try admin("--control", "127.0.0.1:1", "rooms", "--control", relay.control) == (0, rooms, ""))
            #expect(try admin("--control", relay.control, "rooms", environment: ["GHOSTSYNC_CONTROL": "127.0.0.1:1"]) == (0, rooms, ""))
            #expect(try admin("--control", relay.control, "create", "gamma") == (0, "Room 'gamma' created\n", ""))
            #expect(try admin("--control", relay.control, "create", "gamma") == (1, "", "Error: Room 'gamma' already exists\n"))
            #expect(try admin("--control", relay.control, "meta", "set", "gamma", "mode", "ctf") == (0, "Room 'gamma' key 'mode' set\n", ""))
            #expect(try admin("--control", relay.control, "meta", "get", "gamma", "mode") == (0, "ctf\n", ""))
            #expect(try admin("meta", "get", "gamma", "mode", "--control", relay.control) == (0, "ctf\n", ""))
            #expect(try admin("--control", relay.control, "clients", "gamma") == (0, "Clients in 'gamma':\n", ""))
            #expect(try admin("--control", relay.control, "delete", "gamma") == (0, "Room 'gamma' deleted\n", ""))
            #expect(try admin("--control", relay.control, "delete", "gamma") == (1, "", "Error: Room 'gamma' not found\n"))
            #expect(try admin("--control", relay.control, "metrics").output == "connections=0\nrooms=4\nclients=0\nuptime=0hrs\n")

            // Server-side verbs: a member of alpha hears the broadcast, then is kicked.
            let member = try RawClient(port: relay.relayPort)
            let memberID = try member.join("alpha")
            #expect(try admin("--control", relay.control, "broadcast", "alpha", "hello all") == (0, "Broadcast to 'alpha': 9 bytes\n", ""))
            #expect(try member.receive() == .broadcast(senderID: ServerHandle.serverID, data: Array("hello all".utf8)))
            #expect(try admin("--control", relay.control, "broadcast", "nowhere", "x") == (1, "", "Error: Room 'nowhere' not found\n"))
            let id = memberID.uuidString.lowercased()
            #expect(try admin("--control", relay.control, "kick", id, "--reason", "afk") == (0, "Client '\(id)' kicked\n", ""))
            #expect(try member.receive() == .error("kicked: afk"))
            #expect(try member.waitForClose())
            #expect(try admin("--control", relay.control, "kick", id) == (1, "", "Error: Client '\(id)' not found\n"))
        }

        @Test func maxClientsPerRoomFlag() throws {
            let relay = try RelayProcess(["--max-clients-per-room", "1"])
            let first = try RawClient(port: relay.relayPort)
            _ = try first.join("lobby")
            let second = try RawClient(port: relay.relayPort)
            try second.send(.joinRoom("lobby"))
            #expect(try second.receive() == .error("room full: lobby"))
        }

        @Test func helpShowsDurationsAsTyped() throws {
            let help = try Subprocess("ghost-sync", ["relay", "--help"])
            #expect(try help.wait() == 0)
            let text = help.remainingOutput().split(whereSeparator: \.isWhitespace).joined(separator: " ")
            #expect(text.contains("seconds). (default: 31s)"))
            #expect(text.contains("pong deadline. (default: 13s)"))
            #expect(text.contains("sends at once. (default: 0s)"))
            #expect(!text.contains("DurationArgument"))
        }

        @Test func badFlagsExitWithUsage() throws {
            for arguments in [["relay", "--workers", "zero"], ["relay", "--idle-timeout", "soon"], ["relay", "--bind", "nonsense"],
                              ["relay", "--cpus", "3-1"], ["relay", "--log-level", "loud"], ["relay", "--frobnicate"],
                              ["relay", "--max-clients-per-room", "0"]] {
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
