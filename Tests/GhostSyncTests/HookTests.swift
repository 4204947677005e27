import Synchronization
import Testing
@testable import GhostSync

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

extension Relay {
    /// Issue 10: the hooks a game server needs before it relays, on 1, 2 and 4 workers.
    @Suite struct HookTests {
        struct AuthContext: Sendable, Equatable {
            let user: String
        }

        /// Attaches an auth context in `onConnect` and checks it from `onJoin` and `onJoined`.
        final class Authenticator: ServerHandler, @unchecked Sendable {
            let handle = Mutex<ServerHandle?>(nil)
            let log = EventLog<String>()

            func onConnect(_ client: ConnectingClient) -> Bool {
                client.setMeta(AuthContext(user: "user-\(client.address.port)"))
                log.append("connect \(client.id)")
                return true
            }

            func onJoin(clientID: UUID, roomID: String, address: SocketAddress) -> Bool {
                let context = handle.withLock { $0 }?.clientMeta(clientID, as: AuthContext.self)
                log.append("join \(clientID) \(context?.user ?? "none")")
                return context == AuthContext(user: "user-\(address.port)")
            }

            func onJoined(clientID: UUID, roomID: String) {
                log.append("joined \(clientID) \(roomID)")
            }
        }

        @Test(arguments: workerCounts)
        func onConnectKnowsTheClientIDAndAttachesMetadata(workers: Int) async throws {
            let handler = Authenticator()
            try await withServer(workers: workers, configure: { $0.handler(handler) }) { handle, port in
                handler.handle.withLock { $0 = handle }
                let client = try await Client.local(port)
                let id = try await client.joined("lobby")
                #expect(await handler.log.first { $0 == "connect \(id)" } != nil)
                #expect(await handler.log.first { $0.hasPrefix("join \(id) user-") } != nil)
                #expect(await handler.log.first { $0 == "joined \(id) lobby" } != nil)
                #expect(handle.clientMeta(id, as: AuthContext.self)?.user.hasPrefix("user-") == true)
            }
        }

        /// Rejects bytes starting 0xFE with an Error to the sender, drops 0xFF silently.
        struct MoveValidator: ServerHandler {
            let recorder = RecordingHandler()
            var broadcastFilter: BroadcastFilter? {
                BroadcastFilter { _, _, data in
                    switch data.first {
                    case 0xFE: return .reject("illegal move")
                    case 0xFF: return .drop
                    default: return .relay
                    }
                }
            }
            func onBroadcast(clientID: UUID, roomID: String, data: UnsafeRawBufferPointer) {
                recorder.onBroadcast(clientID: clientID, roomID: roomID, data: data)
            }
        }

        @Test(arguments: workerCounts)
        func broadcastFilterDropsOrRejectsBeforeTheFanOut(workers: Int) async throws {
            let handler = MoveValidator()
            let rooms = (0..<workers).map { roomID(onShard: $0, of: workers) }
            try await withServer(workers: workers, rooms: rooms, configure: { $0.handler(handler) }) { handle, port in
                for room in rooms {
                    let player = try await Client.local(port)
                    let playerID = try await player.joined(room)
                    let watcher = try await Client.local(port)
                    _ = try await watcher.joined(room)
                    _ = try await player.next()  // PlayerJoined
                    try await player.broadcast([0xFE, 1])
                    #expect(try await player.next() == .error("illegal move"))
                    try await player.broadcast([0xFF, 2])
                    try await player.broadcast([0x01, 3])
                    #expect(try await watcher.next() == .broadcast(senderID: playerID, data: [0x01, 3]))
                    #expect(try await watcher.sync() == [])
                    #expect(try await player.sync() == [])  // nothing for the silent drop
                    // onBroadcast runs only for what was relayed.
                    #expect(handler.recorder.log.events.filter { if case .broadcast(playerID, _, _) = $0 { return true } else { return false } } == [.broadcast(playerID, room, [0x01, 3])])
                }
                try await eventually { handle.workerStatistics.reduce(WorkerStatistics(), +)[.broadcastsFiltered] == 2 * rooms.count }
            }
        }

        /// 24 clients, accepted by every worker, join a room of capacity 5 at once: exactly five
        /// get in; the others are refused with `room full` (before their handoff when the
        /// directory already shows it full, on the room's worker otherwise).
        @Test(arguments: workerCounts)
        func roomCapacityHoldsAcrossShards(workers: Int) async throws {
            let handler = RecordingHandler()
            let room = roomID(onShard: workers - 1, of: workers, prefix: "arena")
            try await withServer(workers: workers, rooms: [room], configure: { $0.handler(handler).maxClientsPerRoom(5) }) { handle, port in
                var sockets: [RawClient] = []
                for _ in 0..<24 { sockets.append(try RawClient(port: port)) }
                try await eventually { handle.clientCount == 24 }
                for socket in sockets { try socket.send(.joinRoom(room)) }
                var joined = 0
                var full = 0
                for socket in sockets {
                    while true {
                        let reply = try socket.receive()
                        if case .joined = reply { joined += 1; break }
                        if reply == .error("room full: \(room)") { full += 1; break }
                    }
                }
                #expect(joined == 5)
                #expect(full == 19)
                #expect(handle.roomClientCount(room) == 5)
                let joinedHooks = handler.log.events.filter { if case .joined = $0 { return true } else { return false } }
                #expect(joinedHooks.count == 5)
                try await eventually { handle.workerStatistics.reduce(WorkerStatistics(), +)[.joinsRefusedFull] == 19 }
                // Failures after onJoin allowed the join are reported as such.
                let failedHooks = handler.log.events.filter { if case .joinFailed(_, room, .roomFull) = $0 { return true } else { return false } }
                #expect(failedHooks.count <= 19)
            }
        }

        /// `onJoin` deletes the room it is asked about: the join was allowed but cannot complete.
        final class Saboteur: ServerHandler, @unchecked Sendable {
            let handle = Mutex<ServerHandle?>(nil)
            let recorder = RecordingHandler()
            func onJoin(clientID: UUID, roomID: String, address: SocketAddress) -> Bool {
                if roomID.hasPrefix("doomed") { handle.withLock { $0 }?.deleteRoom(roomID) }
                return true
            }
            func onJoinFailed(clientID: UUID, roomID: String, reason: JoinFailure) {
                recorder.onJoinFailed(clientID: clientID, roomID: roomID, reason: reason)
            }
        }

        @Test(arguments: workerCounts)
        func joinFailedAfterItWasAllowed(workers: Int) async throws {
            let handler = Saboteur()
            let rooms = (0..<workers).map { roomID(onShard: $0, of: workers, prefix: "doomed") }
            try await withServer(workers: workers, rooms: rooms + ["lobby"], configure: { $0.handler(handler) }) { handle, port in
                handler.handle.withLock { $0 = handle }
                for room in rooms {
                    let client = try await Client.local(port)
                    try await client.requestJoin(room)
                    #expect(try await client.next() == .error("room not found: \(room)"))
                    let id = try await client.joined("lobby")
                    #expect(await handler.recorder.log.first { $0 == .joinFailed(id, room, .roomNotFound) } != nil)
                }
            }
        }
    }
}
