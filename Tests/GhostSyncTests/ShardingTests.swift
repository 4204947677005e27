import Glibc
import Synchronization
import Testing
@testable import GhostSync

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

extension Relay {
    /// Multi-core behaviour: rooms on different shards, cross-shard handoff, control from many
    /// threads. Each with 1, 2 and 4 workers.
    @Suite struct ShardingTests {
        /// A client that writes JoinRoom plus 1,000 Broadcast frames in one write, to a room on
        /// another worker, has all 1,000 relayed, in order, none twice.
        @Test(arguments: workerCounts)
        func handoffKeepsEveryFrameInOrder(workers: Int) async throws {
            // A target room on every shard; each burster first settles in a room on the next
            // shard, so its burst always crosses shards (whichever worker accepted it).
            let rooms = (0..<workers).map { roomID(onShard: $0, of: workers) }
            let startRooms = (0..<workers).map { roomID(onShard: ($0 + 1) % workers, of: workers, prefix: "start") }
            var server: ServerHandle?
            try await withServer(workers: workers, rooms: rooms + startRooms) { handle, port in
                server = handle
                for (index, room) in rooms.enumerated() {
                    let member = try TestClient(port: port)
                    _ = try member.join(room)
                    let burster = try TestClient(port: port)
                    _ = try burster.join(startRooms[index])
                    var burst = ClientWire.joinRoom(room).encodedFrame()
                    for sequence in 0..<1000 {
                        burst += ClientWire.broadcast(withUnsafeBytes(of: UInt32(sequence).littleEndian) { Array($0) }).encodedFrame()
                    }
                    try burster.sendRaw(burst)
                    guard case .joined(let bursterID, room) = try burster.receive() else {
                        Issue.record("burster did not join \(room)")
                        return
                    }
                    #expect(try member.receive() == .playerJoined(clientID: bursterID))
                    for expected in 0..<1000 {
                        guard case .broadcast(let sender, let data) = try member.receive() else {
                            Issue.record("expected broadcast \(expected)")
                            return
                        }
                        #expect(sender == bursterID)
                        let sequence = data.withUnsafeBytes { UInt32(littleEndian: $0.loadUnaligned(as: UInt32.self)) }
                        if sequence != UInt32(expected) {
                            Issue.record("got \(sequence), expected \(expected) in room \(room)")
                            return
                        }
                    }
                    try member.send(.ping)
                    #expect(try member.receive() == .pong)  // none twice
                }
            }
            // After shutdown every worker has published its final counts.
            let totals = server!.workerStatistics.reduce(WorkerStatistics(), +)
            #expect(totals[.handoffsIn] == totals[.handoffsOut])
            if workers > 1 {
                #expect(totals[.handoffsIn] >= rooms.count)
            }
            // Per room: three joins, 1,000 broadcasts, one ping.
            #expect(totals[.framesReceived] == 1004 * rooms.count)
        }

        @Test(arguments: workerCounts)
        func roomsOnDifferentShardsRelayIndependently(workers: Int) async throws {
            let rooms = (0..<workers).map { roomID(onShard: $0, of: workers) }
            try await withServer(workers: workers, rooms: rooms) { handle, port in
                #expect(rooms.enumerated().allSatisfy { handle.shard(of: $0.element) == $0.offset })
                var pairs: [(TestClient, TestClient, UUID)] = []
                for room in rooms {
                    let a = try TestClient(port: port)
                    let b = try TestClient(port: port)
                    let aID = try a.join(room)
                    _ = try b.join(room)
                    #expect(try a.receive().isPlayerJoined)
                    pairs.append((a, b, aID))
                }
                for (index, pair) in pairs.enumerated() { try pair.0.send(.broadcast([UInt8(index)])) }
                for (index, pair) in pairs.enumerated() {
                    #expect(try pair.1.receive() == .broadcast(senderID: pair.2, data: [UInt8(index)]))
                }
            }
        }

        /// A client hops across rooms on every shard and back; at each stop the room's members
        /// see it arrive and leave, and it relays there.
        @Test(arguments: workerCounts)
        func clientMovesBetweenShards(workers: Int) async throws {
            let rooms = (0..<max(workers, 2)).map { roomID(onShard: $0 % workers, of: workers, prefix: "hop\($0)") }
            try await withServer(workers: workers, rooms: rooms) { handle, port in
                let residents = try rooms.map { room -> TestClient in
                    let resident = try TestClient(port: port)
                    _ = try resident.join(room)
                    return resident
                }
                let traveller = try TestClient(port: port)
                var travellerID: UUID?
                for lap in 0..<3 {
                    for (index, room) in rooms.enumerated() {
                        let id = try traveller.join(room)
                        if travellerID == nil { travellerID = id }
                        #expect(id == travellerID)
                        #expect(handle.clientRoom(id) == room)
                        let previous = (index + rooms.count - 1) % rooms.count
                        if lap > 0 || index > 0 {
                            #expect(try residents[previous].receive() == .playerLeft(clientID: id))
                        }
                        #expect(try residents[index].receive() == .playerJoined(clientID: id))
                        try traveller.send(.broadcast([UInt8(lap), UInt8(index)]))
                        #expect(try residents[index].receive() == .broadcast(senderID: id, data: [UInt8(lap), UInt8(index)]))
                        for other in rooms.indices where other != index {
                            #expect(handle.roomClients(rooms[other])?.contains(id) == false)
                        }
                    }
                }
            }
        }

        /// ServerHandle called from many threads at once while clients join, broadcast and
        /// leave: no crash, no deadlock, consistent answers.
        @Test(arguments: workerCounts)
        func handleHammeredFromManyThreads(workers: Int) async throws {
            let rooms = (0..<8).map { "hammer-\($0)" }
            try await withServer(workers: workers, rooms: rooms) { handle, port in
                let stop = Atomic<Bool>(false)
                let calls = Atomic<Int>(0)
                let threads = (0..<4).map { thread in
                    startThread {
                        var round = 0
                        while !stop.load(ordering: .relaxed) {
                            let room = rooms[(round + thread) % rooms.count]
                            _ = handle.roomClients(room)
                            _ = handle.roomClientCount(room)
                            _ = handle.roomQueueLengths(room)
                            handle.setRoomMeta(room, key: "t\(thread)", value: "\(round)")
                            _ = handle.roomMetaAll(room)
                            _ = handle.roomIDs
                            _ = handle.clientCount
                            let scratch = "scratch-\(thread)"
                            try? handle.createRoom(scratch)
                            handle.deleteRoom(scratch)
                            round += 1
                            calls.add(1, ordering: .relaxed)
                        }
                    }
                }
                var clients: [TestClient] = []
                var roomless: [TestClient] = []
                for index in 0..<24 {
                    let client = try TestClient(port: port)
                    let id = try client.join(rooms[index % rooms.count])
                    if index % 3 == 0 {
                        _ = try client.join(rooms[(index + 1) % rooms.count])
                        #expect(handle.clientRoom(id) == rooms[(index + 1) % rooms.count])
                    }
                    if index % 4 == 0 {
                        try client.send(.leaveRoom)
                        roomless.append(client)
                    } else {
                        clients.append(client)
                    }
                }
                for client in clients { try client.send(.broadcast([7])) }
                for client in clients {
                    try client.send(.echoTest([1]))
                    var message = try client.receive()
                    while message != .echoTest([1]) { message = try client.receive() }
                }
                stop.store(true, ordering: .relaxed)
                threads.forEach { pthread_join($0, nil) }
                #expect(calls.load(ordering: .relaxed) > 0)
                let members = rooms.compactMap { handle.roomClientCount($0) }.reduce(0, +)
                #expect(members == clients.count)
                #expect(handle.clientCount == clients.count + roomless.count)
            }
        }
    }
}
