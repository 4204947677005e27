import Testing
@testable import GhostSync

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

extension Relay {
    /// The original suite's room and relay behaviour, each with 1, 2 and 4 workers.
    @Suite struct RoomRelayTests {
        @Test(arguments: workerCounts)
        func connectAndJoin(workers: Int) async throws {
            let handler = RecordingHandler()
            try await withServer(workers: workers, configure: { $0.handler(handler) }) { handle, port in
                let client = try await Client.local(port)
                let id = try await client.joined("lobby")
                #expect(handle.clientRoom(id) == "lobby")
                #expect(handle.roomClients("lobby") == [id])
                #expect(handle.clientAddress(id)?.isLoopback == true)
                #expect(await handler.log.first { $0 == .join(id, "lobby") } != nil)
            }
        }

        @Test func joinNonexistentRoom() async throws {
            try await withServer { _, port in
                let client = try await Client.local(port)
                try await client.requestJoin(("nowhere"))
                #expect(try await client.next() == .error("room not found: nowhere"))
            }
        }

        @Test(arguments: workerCounts)
        func broadcastReachesOthersButNotTheSender(workers: Int) async throws {
            let handler = RecordingHandler()
            try await withServer(workers: workers, configure: { $0.handler(handler) }) { _, port in
                let sender = try await Client.local(port)
                let first = try await Client.local(port)
                let second = try await Client.local(port)
                let senderID = try await sender.joined("lobby")
                _ = try await first.joined("lobby")
                _ = try await second.joined("lobby")
                try await sender.broadcast((Array("hello room".utf8)))
                for receiver in [first, second] {
                    var message = try await receiver.next()
                    while case .playerJoined = message { message = try await receiver.next() }
                    #expect(message == .broadcast(senderID: senderID, data: Array("hello room".utf8)))
                }
                // The sender sees the two PlayerJoined, then nothing of its own broadcast.
                #expect(try await sender.next().isPlayerJoined)
                #expect(try await sender.next().isPlayerJoined)
                #expect(try await sender.sync() == [])
                #expect(await handler.log.first { $0 == .broadcast(senderID, "lobby", Array("hello room".utf8)) } != nil)
            }
        }

        @Test(arguments: workerCounts)
        func roomsAreIsolated(workers: Int) async throws {
            try await withServer(workers: workers, rooms: ["red", "blue"]) { _, port in
                let red1 = try await Client.local(port)
                let red2 = try await Client.local(port)
                let blue = try await Client.local(port)
                _ = try await red1.joined("red")
                _ = try await blue.joined("blue")
                _ = try await red2.joined("red")
                #expect(try await red1.next().isPlayerJoined)
                try await blue.broadcast(([1]))
                try await red2.broadcast(([2]))
                guard case .broadcast(_, let data) = try await red1.next() else { Issue.record("expected broadcast"); return }
                #expect(data == [2])
                #expect(try await red1.sync() == [])
                #expect(try await blue.sync() == [])  // nothing from red arrived before
            }
        }

        @Test(arguments: workerCounts)
        func leaveTellsTheOthers(workers: Int) async throws {
            let handler = RecordingHandler()
            try await withServer(workers: workers, configure: { $0.handler(handler) }) { handle, port in
                let stay = try await Client.local(port)
                let go = try await Client.local(port)
                _ = try await stay.joined("lobby")
                let goID = try await go.joined("lobby")
                #expect(try await stay.next() == .playerJoined(clientID: goID))
                try await go.leave()
                #expect(try await stay.next() == .playerLeft(clientID: goID))
                #expect(await handler.log.first { $0 == .leave(goID, "lobby") } != nil)
                #expect(handle.clientRoom(goID) == nil)
                #expect(handle.roomClientCount("lobby") == 1)
                // Leave while in no room: nothing happens; broadcast now fails.
                try await go.leave()
                try await go.broadcast(([1]))
                #expect(try await go.next() == .error("not in a room"))
            }
        }

        @Test(arguments: workerCounts)
        func disconnectCleansUp(workers: Int) async throws {
            let handler = RecordingHandler()
            try await withServer(workers: workers, configure: { $0.handler(handler) }) { handle, port in
                let stay = try await Client.local(port)
                _ = try await stay.joined("lobby")
                let goID: UUID
                do {
                    let go = try await Client.local(port)
                    goID = try await go.joined("lobby")
                    #expect(try await stay.next() == .playerJoined(clientID: goID))
                    #expect(handle.clientCount == 2)
                }  // closed here
                #expect(try await stay.next() == .playerLeft(clientID: goID))
                #expect(await handler.log.first { $0 == .disconnect(goID, .connectionClosed) } != nil)
                #expect(handler.log.events.contains(.leave(goID, "lobby")))
                #expect(handle.roomClients("lobby")?.contains(goID) == false)
                #expect(handle.clientCount == 1)
                #expect(handle.clientRoom(goID) == nil)
            }
        }

        @Test func joiningAnotherRoomLeavesTheFirst() async throws {
            try await withServer(workers: 2, rooms: ["a", "b"]) { handle, port in
                let watcher = try await Client.local(port)
                let mover = try await Client.local(port)
                _ = try await watcher.joined("a")
                let moverID = try await mover.joined("a")
                #expect(try await watcher.next() == .playerJoined(clientID: moverID))
                #expect(try await mover.joined("b") == moverID)
                #expect(try await watcher.next() == .playerLeft(clientID: moverID))
                #expect(handle.roomClients("b") == [moverID])
                #expect(handle.clientRoom(moverID) == "b")
            }
        }

        @Test func onJoinCanReject() async throws {
            var handler = RecordingHandler()
            handler.acceptJoin = { _, room in room != "vip" }
            try await withServer(rooms: ["lobby", "vip"], configure: { $0.handler(handler) }) { handle, port in
                let client = try await Client.local(port)
                let id = try await client.joined("lobby")
                try await client.requestJoin(("vip"))
                #expect(try await client.next() == .error("join rejected"))
                #expect(handle.clientRoom(id) == "lobby")  // a rejected join leaves the client where it was
            }
        }

        @Test func echoTestAnswersTheSender() async throws {
            try await withServer { _, port in
                let client = try await Client.local(port)
                try await client.echoTest((Array("marco".utf8)))
                #expect(try await client.next() == .echoTest(Array("marco".utf8)))
                _ = try await client.joined("lobby")
                try await client.echoTest(([]))
                #expect(try await client.next() == .echoTest([]))
            }
        }

        @Test func pingIsAnsweredWithPong() async throws {
            try await withServer { _, port in
                let client = try RawClient(port: port)  // raw: the Client hides pongs
                try client.send(.ping)
                #expect(try client.receive() == .pong)
            }
        }
    }
}
