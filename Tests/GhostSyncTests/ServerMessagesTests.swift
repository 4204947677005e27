import Synchronization
import Testing
@testable import GhostSync

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

extension Relay {
    /// Issue 11: the server talks too. `ServerHandle.broadcast`, `send` and `disconnect`, routed
    /// to the owning worker through the mailboxes, on 1, 2 and 4 workers.
    @Suite struct ServerMessagesTests {
        @Test(arguments: workerCounts)
        func broadcastReachesEveryMemberFromTheServersID(workers: Int) async throws {
            let rooms = (0..<workers).map { roomID(onShard: $0, of: workers) }
            try await withServer(workers: workers, rooms: rooms) { handle, port in
                for room in rooms {
                    let first = try await Client.local(port)
                    _ = try await first.joined(room)
                    let second = try await Client.local(port)
                    let secondID = try await second.joined(room)
                    #expect(try await first.next() == .playerJoined(clientID: secondID))
                    try handle.broadcast(roomID: room, data: Array("tick \(room)".utf8))
                    for member in [first, second] {
                        #expect(try await member.next() == .broadcast(senderID: ServerHandle.serverID, data: Array("tick \(room)".utf8)))
                        #expect(try await member.sync() == [])  // once each
                    }
                }
                let totals = handle.workerStatistics.reduce(WorkerStatistics(), +)
                #expect(totals[.serverBroadcasts] == rooms.count)
                #expect(ServerHandle.serverID.uuidString == "00000000-0000-0000-0000-000000000000")
            }
        }

        @Test(arguments: workerCounts)
        func sendReachesOneClientOnly(workers: Int) async throws {
            try await withServer(workers: workers) { handle, port in
                let target = try await Client.local(port)
                let targetID = try await target.joined("lobby")
                let other = try await Client.local(port)
                _ = try await other.joined("lobby")
                _ = try await target.next()  // PlayerJoined
                try handle.send(clientID: targetID, data: [1, 2, 3])
                #expect(try await target.next() == .broadcast(senderID: ServerHandle.serverID, data: [1, 2, 3]))
                #expect(try await other.sync() == [])
                // Also to a client in no room.
                let loner = try RawClient(port: port)
                try loner.send(.echoTest([9]))
                _ = try loner.receive()
                let lonerID = try await eventually(find: { handle.core.clients.allIDs.first { $0 != targetID && handle.clientRoom($0) == nil } })
                try handle.send(clientID: lonerID, data: [4])
                #expect(try loner.receive() == .broadcast(senderID: ServerHandle.serverID, data: [4]))
            }
        }

        @Test(arguments: workerCounts)
        func disconnectClosesWithAReason(workers: Int) async throws {
            let handler = RecordingHandler()
            try await withServer(workers: workers, configure: { $0.handler(handler) }) { handle, port in
                let banned = try await Client.local(port)
                let bannedID = try await banned.joined("lobby")
                let witness = try await Client.local(port)
                _ = try await witness.joined("lobby")
                try handle.disconnect(clientID: bannedID, reason: "banned")
                #expect(try await witness.next() == .playerLeft(clientID: bannedID))
                var last: ServerEvent?
                while let event = try await banned.recvWithin() { last = event }
                #expect(last == .error("kicked: banned"))
                #expect(await handler.log.first { $0 == .disconnect(bannedID, .kicked("banned")) } != nil)
                try await eventually { handle.clientCount == 1 }
                #expect(throws: ServerError.clientNotFound(bannedID)) { try handle.disconnect(clientID: bannedID, reason: "again") }
            }
        }

        @Test func refusedWhatCannotBeDelivered() async throws {
            try await withServer(workers: 2, configure: { $0.maxPayload(1024) }) { handle, _ in
                #expect(handle.maxMessageSize == 1012)
                #expect(throws: ServerError.roomNotFound("nowhere")) { try handle.broadcast(roomID: "nowhere", data: [1]) }
                let stranger = UUID()
                #expect(throws: ServerError.clientNotFound(stranger)) { try handle.send(clientID: stranger, data: [1]) }
                #expect(throws: ServerError.messageTooLarge(length: 1013, limit: 1012)) {
                    try handle.broadcast(roomID: "lobby", data: [UInt8](repeating: 0, count: 1013))
                }
                try handle.broadcast(roomID: "lobby", data: [UInt8](repeating: 0, count: 1012))  // the edge is fine
            }
        }

        /// A hook greets every joiner from `onJoin`, which runs on the worker the client is on
        /// when it asks; the join then moves it to the room's worker, so the greeting is
        /// forwarded there and arrives after `Joined`.
        final class Greeter: ServerHandler, @unchecked Sendable {
            let handle = Mutex<ServerHandle?>(nil)
            func onJoin(clientID: UUID, roomID: String, address: SocketAddress) -> Bool {
                let handle = self.handle.withLock { $0 }
                try? handle?.send(clientID: clientID, data: Array("welcome to \(roomID)".utf8))
                return true
            }
        }

        @Test(arguments: workerCounts)
        func hooksCanSendAndMessagesFollowAMovingClient(workers: Int) async throws {
            let greeter = Greeter()
            let rooms = (0..<workers).map { roomID(onShard: $0, of: workers) }
            try await withServer(workers: workers, rooms: rooms, configure: { $0.handler(greeter) }) { handle, port in
                greeter.handle.withLock { $0 = handle }
                for room in rooms {
                    let client = try await Client.local(port)
                    _ = try await client.joined(room)
                    #expect(try await client.next() == .broadcast(senderID: ServerHandle.serverID, data: Array("welcome to \(room)".utf8)))
                }
                // A client bouncing between every shard gets every message sent to it, in order.
                let bouncer = try RawClient(port: port)
                let bouncerID = try bouncer.join(rooms[0])
                _ = try bouncer.receive()  // its welcome
                var storm: [UInt8] = []
                for round in 0..<200 { storm += ClientWire.joinRoom(rooms[(round + 1) % rooms.count]).encodedFrame() }
                try bouncer.sendRaw(storm)
                for sequence in 0..<50 { try handle.send(clientID: bouncerID, data: [UInt8(sequence)]) }
                var received: [UInt8] = []
                while received.count < 50 {
                    let message = try bouncer.receive()
                    if case .broadcast(ServerHandle.serverID, let data) = message, data.count == 1 { received.append(data[0]) }
                }
                #expect(received == (0..<50).map(UInt8.init))
            }
        }
    }
}

/// Waits (bounded) until `find` returns a value.
func eventually<T>(timeout: Duration = .seconds(10), sourceLocation: SourceLocation = #_sourceLocation, find: () -> T?) async throws -> T {
    var found: T?
    try await eventually(timeout: timeout, sourceLocation: sourceLocation) {
        found = find()
        return found != nil
    }
    return found!
}
