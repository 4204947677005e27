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
                let client = try await Client.local(port)
                try handle.createRoom("fresh")
                _ = try await client.joined("fresh")
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
                    let client = try await Client.local(port)
                    _ = try await client.joined("lobby")
                    try await client.leave()
                    #expect(try await client.sync() == [])
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

                let client = try await Client.local(port)
                let id = try await client.joined("lobby")
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
                let oldA = try await Client.local(port)
                let oldB = try await Client.local(port)
                let oldAID = try await oldA.joined("lobby")
                let oldBID = try await oldB.joined("lobby")
                #expect(try await oldA.next() == .playerJoined(clientID: oldBID))
                #expect(handle.deleteRoom("lobby"))
                try await oldA.broadcast(([1]))
                #expect(try await oldA.next() == .error("room not found: lobby"))
                try await oldA.requestJoin(("lobby"))
                #expect(try await oldA.next() == .error("room not found: lobby"))
                #expect(handle.roomClients("lobby") == nil)

                try handle.createRoom("lobby")
                let fresh = try await Client.local(port)
                let freshID = try await fresh.joined("lobby")
                #expect(handle.roomClients("lobby") == [freshID])
                try await oldB.broadcast(([2]))
                #expect(try await oldB.next() == .error("room not found: lobby"))
                try await fresh.broadcast(([3]))
                #expect(try await fresh.sync() == [])  // no PlayerJoined, no broadcast from the old room
                #expect(try await oldA.sync() == [])  // oldA got nothing from the new room
                // The old members can join the new room like anyone else.
                #expect(try await oldA.joined("lobby") == oldAID)
                #expect(try await fresh.next() == .playerJoined(clientID: oldAID))
            }
        }

        /// The guide's max-players example: `roomClientCount` called inside `onJoin`.
        @Test(arguments: workerCounts)
        func maxPlayersFromInsideOnJoin(workers: Int) async throws {
            final class Box: Sendable { let handle = Locked<ServerHandle?>(nil) }
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
                let first = try await Client.local(port)
                let second = try await Client.local(port)
                let third = try await Client.local(port)
                _ = try await first.joined("duel")
                _ = try await second.joined("duel")
                try await third.requestJoin(("duel"))
                #expect(try await third.next() == .error("join rejected"))
                #expect(handle.roomClientCount("duel") == 2)
            }
        }
    }
}
