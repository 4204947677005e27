import Testing
@testable import GhostSync
@testable import GhostSyncRelay

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

extension Relay {
    /// Every control response, byte for byte as the original daemon answers (its five commands)
    /// or in the same style (ours). In-process; RelayExecutableTests covers the socket.
    @Suite struct ControlProtocolTests {
        @Test func originalCommands() async throws {
            try await withServer(rooms: ["lobby", "arena"]) { handle, port in
                let control = ControlProtocol(handle: handle, startedAt: .now)
                // Every room line ends in a newline, the last one too.
                #expect(control.execute("LIST_ROOMS") == "OK\narena: 0 clients\nlobby: 0 clients\n")
                #expect(control.execute("CREATE_ROOM\nduel") == "OK\nRoom 'duel' created")
                #expect(control.execute("CREATE_ROOM\nduel") == "ERROR\nRoom 'duel' already exists")
                #expect(control.execute("DELETE_ROOM\nduel") == "OK\nRoom 'duel' deleted")
                #expect(control.execute("DELETE_ROOM\nduel") == "ERROR\nRoom 'duel' not found")
                #expect(control.execute("ROOM_CLIENTS\nlobby") == "OK\nClients in 'lobby':\n")
                #expect(control.execute("ROOM_CLIENTS\nnowhere") == "ERROR\nRoom 'nowhere' not found")
                #expect(control.execute("METRICS") == "OK\nconnections=0\nrooms=2\nclients=0\nuptime=0hrs")

                let alice = try await Client.local(port)
                let aliceID = try await alice.joined("lobby")
                let bob = try await Client.local(port)
                let bobID = try await bob.joined("lobby")
                try await eventually { handle.roomClientCount("lobby") == 2 }
                #expect(control.execute("LIST_ROOMS") == "OK\narena: 0 clients\nlobby: 2 clients\n")
                let ids = [aliceID, bobID].map { $0.uuidString.lowercased() }
                #expect(control.execute("ROOM_CLIENTS\nlobby") == "OK\nClients in 'lobby':\n\(ids[0])\n\(ids[1])\n")
                // Connections since start: a client that left still counts; workers publish their
                // counters once per loop iteration.
                alice.close()
                try await eventually { handle.clientCount == 1 && control.execute("METRICS").contains("connections=2") }
                #expect(control.execute("METRICS") == "OK\nconnections=2\nrooms=2\nclients=1\nuptime=0hrs")
                bob.close()
            }
        }

        /// Issue 11: the server-side verbs through the control port.
        @Test(arguments: workerCounts)
        func kickAndRoomBroadcast(workers: Int) async throws {
            let handler = RecordingHandler()
            try await withServer(workers: workers, configure: { $0.handler(handler) }) { handle, port in
                let control = ControlProtocol(handle: handle, startedAt: .now)
                let alice = try await Client.local(port)
                let aliceID = try await alice.joined("lobby")
                let bob = try await Client.local(port)
                let bobID = try await bob.joined("lobby")
                #expect(try await alice.next() == .playerJoined(clientID: bobID))

                #expect(control.execute("ROOM_BROADCAST\nlobby\nround 2 starts\n") == "OK\nBroadcast to 'lobby': 14 bytes")
                for member in [alice, bob] {
                    #expect(try await member.next() == .broadcast(senderID: ServerHandle.serverID, data: Array("round 2 starts".utf8)))
                }
                // The text is kept as sent: inner newlines and spaces too.
                #expect(control.execute("ROOM_BROADCAST\nlobby\n two\nlines ") == "OK\nBroadcast to 'lobby': 11 bytes")
                #expect(try await bob.next() == .broadcast(senderID: ServerHandle.serverID, data: Array(" two\nlines ".utf8)))
                #expect(control.execute("ROOM_BROADCAST\nnowhere\nhi\n") == "ERROR\nRoom 'nowhere' not found")
                #expect(control.execute("ROOM_BROADCAST") == "ERROR\nMissing argument at position 0")

                let bobText = bobID.uuidString.lowercased()
                #expect(control.execute("KICK\n\(bobText)\ncheating\n") == "OK\nClient '\(bobText)' kicked")
                #expect(try await alice.next() == .broadcast(senderID: ServerHandle.serverID, data: Array(" two\nlines ".utf8)))
                #expect(try await alice.next() == .playerLeft(clientID: bobID))
                #expect(await handler.log.first { $0 == .disconnect(bobID, .kicked("cheating")) } != nil)
                try await eventually { handle.clientCount == 1 }
                #expect(control.execute("KICK\n\(bobText)\n") == "ERROR\nClient '\(bobText)' not found")
                #expect(control.execute("KICK\nnot-a-uuid\n") == "ERROR\nInvalid client ID: not-a-uuid")
                #expect(control.execute("kick") == "ERROR\nMissing argument at position 0")
                _ = aliceID
            }
        }

        @Test func uptimeIsInWholeHours() async throws {
            try await withServer(rooms: []) { handle, _ in
                let started = ContinuousClock.now - .seconds(2 * 3600 + 59 * 60)
                #expect(ControlProtocol(handle: handle, startedAt: started).execute("METRICS") == "OK\nconnections=0\nrooms=0\nclients=0\nuptime=2hrs")
                #expect(ControlProtocol(handle: handle, startedAt: .now).execute("LIST_ROOMS") == "OK\n")
            }
        }

        @Test func commandsAreCaseInsensitiveAndArgumentsTrimmed() async throws {
            try await withServer(rooms: ["lobby"]) { handle, _ in
                let control = ControlProtocol(handle: handle, startedAt: .now)
                #expect(control.execute("list_rooms") == "OK\nlobby: 0 clients\n")
                #expect(control.execute("  List_Rooms \t") == "OK\nlobby: 0 clients\n")
                #expect(control.execute("create_room\n  arena \t") == "OK\nRoom 'arena' created")
                #expect(control.execute("DELETE_ROOM\r\narena\r\n") == "OK\nRoom 'arena' deleted")
                #expect(control.execute("room_clients\n lobby\n") == "OK\nClients in 'lobby':\n")
            }
        }

        @Test func errors() async throws {
            try await withServer(rooms: ["lobby"]) { handle, _ in
                let control = ControlProtocol(handle: handle, startedAt: .now)
                #expect(control.execute("fly_to_the_moon") == "ERROR\nUnknown command: FLY_TO_THE_MOON")
                #expect(control.execute("") == "ERROR\nUnknown command: ")
                #expect(control.execute("CREATE_ROOM") == "ERROR\nMissing argument at position 0")
                #expect(control.execute("DELETE_ROOM\n  ") == "ERROR\nMissing argument at position 0")
                #expect(control.execute("ROOM_CLIENTS") == "ERROR\nMissing argument at position 0")
                #expect(control.execute("ROOM_META_GET\nlobby") == "ERROR\nMissing argument at position 1")
                #expect(control.execute("ROOM_META_SET\nlobby") == "ERROR\nMissing argument at position 1")
            }
        }

        @Test func roomMetadata() async throws {
            try await withServer(rooms: ["lobby"]) { handle, _ in
                let control = ControlProtocol(handle: handle, startedAt: .now)
                #expect(control.execute("ROOM_META_SET\nlobby\nmap\ndust2") == "OK\nRoom 'lobby' key 'map' set")
                #expect(control.execute("ROOM_META_GET\nlobby\nmap") == "OK\ndust2")
                #expect(control.execute("room_meta_get\n lobby \n map ") == "OK\ndust2")
                #expect(control.execute("ROOM_META_GET\nlobby\nmode") == "ERROR\nKey 'mode' not set in room 'lobby'")
                #expect(control.execute("ROOM_META_GET\nnowhere\nmap") == "ERROR\nRoom 'nowhere' not found")
                #expect(control.execute("ROOM_META_SET\nnowhere\nmap\nx") == "ERROR\nRoom 'nowhere' not found")
                // The value is the rest of the request: it may span lines, or be empty.
                #expect(control.execute("ROOM_META_SET\nlobby\nmotd\nhello\nworld") == "OK\nRoom 'lobby' key 'motd' set")
                #expect(control.execute("ROOM_META_GET\nlobby\nmotd") == "OK\nhello\nworld")
                #expect(control.execute("ROOM_META_SET\nlobby\nmap") == "OK\nRoom 'lobby' key 'map' set")
                #expect(control.execute("ROOM_META_GET\nlobby\nmap") == "OK\n")
            }
        }

        @Test func framing() async throws {
            try await withServer(rooms: ["lobby"]) { handle, _ in
                let control = ControlProtocol(handle: handle, startedAt: .now)
                // Two requests in one read, then half of a third: two answers, the half kept.
                var input = ControlProtocol.frame("LIST_ROOMS") + ControlProtocol.frame("list_rooms") + Array(ControlProtocol.frame("METRICS").prefix(6))
                var (output, close) = control.respond(to: &input)
                #expect(output == ControlProtocol.frame("OK\nlobby: 0 clients\n") + ControlProtocol.frame("OK\nlobby: 0 clients\n"))
                #expect(!close && input.count == 6)
                // Not UTF-8: answered, and the connection stays.
                input = [0, 0, 0, 2, 0xc3, 0x28]
                (output, close) = control.respond(to: &input)
                #expect(output == ControlProtocol.frame("ERROR\nInvalid UTF-8") && !close && input.isEmpty)
                // 1 MiB is the largest frame; a longer one closes the connection, unanswered, as
                // soon as its length is read.
                input = ControlProtocol.frame("LIST_ROOMS\n" + String(repeating: "x", count: (1 << 20) - 11))
                #expect(input.count == 4 + (1 << 20))
                (output, close) = control.respond(to: &input)
                #expect(output == ControlProtocol.frame("OK\nlobby: 0 clients\n") && !close)
                input = ControlProtocol.frame("LIST_ROOMS") + [0, 0x10, 0, 1]
                (output, close) = control.respond(to: &input)
                #expect(output == ControlProtocol.frame("OK\nlobby: 0 clients\n") && close)
            }
        }
    }
}
