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
                let client = try TestClient(port: port)
                let id = try client.join("lobby")
                #expect(handle.clientRoom(id) == "lobby")
                #expect(handle.roomClients("lobby") == [id])
                #expect(handle.clientAddress(id)?.isLoopback == true)
                #expect(await handler.log.first { $0 == .join(id, "lobby") } != nil)
            }
        }

        @Test func joinNonexistentRoom() async throws {
            try await withServer { _, port in
                let client = try TestClient(port: port)
                try client.send(.joinRoom("nowhere"))
                #expect(try client.receive() == .error("room not found: nowhere"))
            }
        }

        @Test(arguments: workerCounts)
        func broadcastReachesOthersButNotTheSender(workers: Int) async throws {
            let handler = RecordingHandler()
            try await withServer(workers: workers, configure: { $0.handler(handler) }) { _, port in
                let sender = try TestClient(port: port)
                let first = try TestClient(port: port)
                let second = try TestClient(port: port)
                let senderID = try sender.join("lobby")
                _ = try first.join("lobby")
                _ = try second.join("lobby")
                try sender.send(.broadcast(Array("hello room".utf8)))
                for receiver in [first, second] {
                    var message = try receiver.receive()
                    while case .playerJoined = message { message = try receiver.receive() }
                    #expect(message == .broadcast(senderID: senderID, data: Array("hello room".utf8)))
                }
                // The sender sees the two PlayerJoined, then nothing of its own broadcast.
                #expect(try sender.receive().isPlayerJoined)
                #expect(try sender.receive().isPlayerJoined)
                try sender.send(.ping)
                #expect(try sender.receive() == .pong)
                #expect(await handler.log.first { $0 == .broadcast(senderID, "lobby", Array("hello room".utf8)) } != nil)
            }
        }

        @Test(arguments: workerCounts)
        func roomsAreIsolated(workers: Int) async throws {
            try await withServer(workers: workers, rooms: ["red", "blue"]) { _, port in
                let red1 = try TestClient(port: port)
                let red2 = try TestClient(port: port)
                let blue = try TestClient(port: port)
                _ = try red1.join("red")
                _ = try blue.join("blue")
                _ = try red2.join("red")
                #expect(try red1.receive().isPlayerJoined)
                try blue.send(.broadcast([1]))
                try red2.send(.broadcast([2]))
                guard case .broadcast(_, let data) = try red1.receive() else { Issue.record("expected broadcast"); return }
                #expect(data == [2])
                try red1.send(.ping)
                #expect(try red1.receive() == .pong)
                try blue.send(.ping)
                #expect(try blue.receive() == .pong)  // nothing from red arrived before
            }
        }

        @Test(arguments: workerCounts)
        func leaveTellsTheOthers(workers: Int) async throws {
            let handler = RecordingHandler()
            try await withServer(workers: workers, configure: { $0.handler(handler) }) { handle, port in
                let stay = try TestClient(port: port)
                let go = try TestClient(port: port)
                _ = try stay.join("lobby")
                let goID = try go.join("lobby")
                #expect(try stay.receive() == .playerJoined(clientID: goID))
                try go.send(.leaveRoom)
                #expect(try stay.receive() == .playerLeft(clientID: goID))
                #expect(await handler.log.first { $0 == .leave(goID, "lobby") } != nil)
                #expect(handle.clientRoom(goID) == nil)
                #expect(handle.roomClientCount("lobby") == 1)
                // Leave while in no room: nothing happens; broadcast now fails.
                try go.send(.leaveRoom)
                try go.send(.broadcast([1]))
                #expect(try go.receive() == .error("not in a room"))
            }
        }

        @Test(arguments: workerCounts)
        func disconnectCleansUp(workers: Int) async throws {
            let handler = RecordingHandler()
            try await withServer(workers: workers, configure: { $0.handler(handler) }) { handle, port in
                let stay = try TestClient(port: port)
                _ = try stay.join("lobby")
                let goID: UUID
                do {
                    let go = try TestClient(port: port)
                    goID = try go.join("lobby")
                    #expect(try stay.receive() == .playerJoined(clientID: goID))
                    #expect(handle.clientCount == 2)
                }  // closed here
                #expect(try stay.receive() == .playerLeft(clientID: goID))
                #expect(await handler.log.first { $0 == .disconnect(goID, .connectionClosed) } != nil)
                #expect(handler.log.events.contains(.leave(goID, "lobby")))
                #expect(handle.roomClients("lobby")?.contains(goID) == false)
                #expect(handle.clientCount == 1)
                #expect(handle.clientRoom(goID) == nil)
            }
        }

        @Test func joiningAnotherRoomLeavesTheFirst() async throws {
            try await withServer(workers: 2, rooms: ["a", "b"]) { handle, port in
                let watcher = try TestClient(port: port)
                let mover = try TestClient(port: port)
                _ = try watcher.join("a")
                let moverID = try mover.join("a")
                #expect(try watcher.receive() == .playerJoined(clientID: moverID))
                #expect(try mover.join("b") == moverID)
                #expect(try watcher.receive() == .playerLeft(clientID: moverID))
                #expect(handle.roomClients("b") == [moverID])
                #expect(handle.clientRoom(moverID) == "b")
            }
        }

        @Test func onJoinCanReject() async throws {
            var handler = RecordingHandler()
            handler.acceptJoin = { _, room in room != "vip" }
            try await withServer(rooms: ["lobby", "vip"], configure: { $0.handler(handler) }) { handle, port in
                let client = try TestClient(port: port)
                let id = try client.join("lobby")
                try client.send(.joinRoom("vip"))
                #expect(try client.receive() == .error("join rejected"))
                #expect(handle.clientRoom(id) == "lobby")  // a rejected join leaves the client where it was
            }
        }

        @Test func echoTestAnswersTheSender() async throws {
            try await withServer { _, port in
                let client = try TestClient(port: port)
                try client.send(.echoTest(Array("marco".utf8)))
                #expect(try client.receive() == .echoTest(Array("marco".utf8)))
                _ = try client.join("lobby")
                try client.send(.echoTest([]))
                #expect(try client.receive() == .echoTest([]))
            }
        }

        @Test func pingIsAnsweredWithPong() async throws {
            try await withServer { _, port in
                let client = try TestClient(port: port)
                try client.send(.ping)
                #expect(try client.receive() == .pong)
            }
        }
    }
}

extension ServerWire {
    var isPlayerJoined: Bool {
        if case .playerJoined = self { return true }
        return false
    }
}
