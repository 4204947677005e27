import Synchronization
import Testing
@testable import GhostSync

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

extension Relay {
    /// Rooms and metadata managed at runtime through the handle; soft delete.
    @Suite struct RoomManagementTests {
        @Test func createQueryDelete() async throws {
            let handler = RecordingHandler()
            try await withServer(rooms: [], configure: { $0.handler(handler) }) { handle, port in
                #expect(handle.roomCount == 0)
                try handle.createRoom("lobby")
                try handle.createRoom("duel")
                #expect(throws: ServerError.roomAlreadyExists("lobby")) { try handle.createRoom("lobby") }
                #expect(handle.roomExists("lobby"))
                #expect(!handle.roomExists("nope"))
                #expect(handle.roomCount == 2)
                #expect(handle.roomIDs == ["duel", "lobby"])
                #expect(handle.roomClients("duel") == [])
                #expect(handle.roomClientCount("duel") == 0)
                #expect(handle.roomClients("nope") == nil)
                #expect(handle.roomClientCount("nope") == nil)
                // A room exists for joins as soon as createRoom returns.
                let client = try TestClient(port: port)
                try handle.createRoom("fresh")
                _ = try client.join("fresh")
                #expect(handle.deleteRoom("duel"))
                #expect(!handle.deleteRoom("duel"))
                #expect(!handle.roomExists("duel"))
                #expect(handle.roomCount == 2)
                #expect(handler.log.events.filter { if case .roomCreate = $0 { return true } else { return false } }.count == 3)
                #expect(handler.log.events.contains(.roomDelete("duel")))
            }
        }

        @Test func emptyRoomsAreNotDeleted() async throws {
            try await withServer { handle, port in
                do {
                    let client = try TestClient(port: port)
                    _ = try client.join("lobby")
                    try client.send(.leaveRoom)
                    try client.send(.ping)
                    #expect(try client.receive() == .pong)
                }
                #expect(handle.roomExists("lobby"))
            }
        }

        @Test func stringMetadata() async throws {
            try await withServer { handle, _ in
                #expect(handle.roomMeta("lobby", key: "map") == nil)
                #expect(handle.setRoomMeta("lobby", key: "map", value: "dust2"))
                #expect(handle.setRoomMeta("lobby", key: "mode", value: "ctf"))
                #expect(handle.roomMeta("lobby", key: "map") == "dust2")
                #expect(handle.roomMetaAll("lobby") == ["map": "dust2", "mode": "ctf"])
                #expect(handle.setRoomMeta("lobby", key: "mode", value: nil))
                #expect(handle.roomMetaAll("lobby") == ["map": "dust2"])
                #expect(!handle.setRoomMeta("nope", key: "k", value: "v"))
                #expect(handle.roomMetaAll("nope") == nil)
            }
        }

        struct Score: Sendable, Equatable { var points: Int }
        struct Team: Sendable, Equatable { var name: String }

        @Test func typedMetadataOnRoomsAndClients() async throws {
            try await withServer { handle, port in
                #expect(handle.setRoomMeta("lobby", Score(points: 1)))
                #expect(handle.setRoomMeta("lobby", Team(name: "red")))
                #expect(handle.roomMeta("lobby", as: Score.self) == Score(points: 1))
                #expect(handle.roomHasMeta("lobby", Team.self))
                #expect(handle.withRoomMeta("lobby", as: Score.self) { score in
                    score.points += 41
                    return score.points
                } == 42)
                #expect(handle.takeRoomMeta("lobby", as: Score.self) == Score(points: 42))
                #expect(!handle.roomHasMeta("lobby", Score.self))
                #expect(!handle.setRoomMeta("nope", Score(points: 0)))

                let client = try TestClient(port: port)
                let id = try client.join("lobby")
                #expect(handle.setClientMeta(id, Team(name: "blue")))
                #expect(handle.clientMeta(id, as: Team.self) == Team(name: "blue"))
                #expect(handle.withClientMeta(id, as: Team.self) { $0.name = "green" } != nil)
                #expect(handle.clientHasMeta(id, Team.self))
                #expect(handle.takeClientMeta(id, as: Team.self) == Team(name: "green"))
                #expect(handle.clientMeta(id, as: Team.self) == nil)
                #expect(!handle.setClientMeta(UUID(), Team(name: "x")))
            }
        }

        /// Soft delete: members stay connected; their broadcasts and re-joins get
        /// "room not found", and they never join a later room with the same ID.
        @Test(arguments: workerCounts)
        func softDelete(workers: Int) async throws {
            try await withServer(workers: workers) { handle, port in
                let oldA = try TestClient(port: port)
                let oldB = try TestClient(port: port)
                let oldAID = try oldA.join("lobby")
                let oldBID = try oldB.join("lobby")
                #expect(try oldA.receive() == .playerJoined(clientID: oldBID))
                #expect(handle.deleteRoom("lobby"))
                try oldA.send(.broadcast([1]))
                #expect(try oldA.receive() == .error("room not found: lobby"))
                try oldA.send(.joinRoom("lobby"))
                #expect(try oldA.receive() == .error("room not found: lobby"))
                #expect(handle.roomClients("lobby") == nil)

                try handle.createRoom("lobby")
                let fresh = try TestClient(port: port)
                let freshID = try fresh.join("lobby")
                #expect(handle.roomClients("lobby") == [freshID])
                try oldB.send(.broadcast([2]))
                #expect(try oldB.receive() == .error("room not found: lobby"))
                try fresh.send(.broadcast([3]))
                try fresh.send(.ping)
                #expect(try fresh.receive() == .pong)  // no PlayerJoined, no broadcast from the old room
                try oldA.send(.ping)
                #expect(try oldA.receive() == .pong)  // oldA got nothing from the new room
                // The old members can join the new room like anyone else.
                #expect(try oldA.join("lobby") == oldAID)
                #expect(try fresh.receive() == .playerJoined(clientID: oldAID))
            }
        }

        /// The guide's max-players example: `roomClientCount` called inside `onJoin`.
        @Test(arguments: workerCounts)
        func maxPlayersFromInsideOnJoin(workers: Int) async throws {
            final class Box: Sendable { let handle = Mutex<ServerHandle?>(nil) }
            struct MaxPlayers: ServerHandler {
                let limit: Int
                let box: Box
                func onJoin(clientID: UUID, roomID: String, address: SocketAddress) -> Bool {
                    guard let count = box.handle.withLock({ $0 })?.roomClientCount(roomID) else { return false }
                    return count < limit
                }
            }
            let box = Box()
            try await withServer(workers: workers, rooms: ["duel"], configure: { $0.handler(MaxPlayers(limit: 2, box: box)) }) { handle, port in
                box.handle.withLock { $0 = handle }
                let first = try TestClient(port: port)
                let second = try TestClient(port: port)
                let third = try TestClient(port: port)
                _ = try first.join("duel")
                _ = try second.join("duel")
                try third.send(.joinRoom("duel"))
                #expect(try third.receive() == .error("join rejected"))
                #expect(handle.roomClientCount("duel") == 2)
            }
        }
    }
}
