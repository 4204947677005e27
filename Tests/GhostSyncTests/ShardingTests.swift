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
                    let member = try await Client.local(port)
                    _ = try await member.joined(room)
                    let burster = try RawClient(port: port)
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
                    #expect(try await member.next() == .playerJoined(clientID: bursterID))
                    for expected in 0..<1000 {
                        guard case .broadcast(let sender, let data) = try await member.next() else {
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
                    #expect(try await member.sync() == [])  // none twice
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
                var pairs: [(Client, Client, UUID)] = []
                for room in rooms {
                    let a = try await Client.local(port)
                    let b = try await Client.local(port)
                    let aID = try await a.joined(room)
                    _ = try await b.joined(room)
                    #expect(try await a.next().isPlayerJoined)
                    pairs.append((a, b, aID))
                }
                for (index, pair) in pairs.enumerated() { try await pair.0.broadcast([UInt8(index)]) }
                for (index, pair) in pairs.enumerated() {
                    #expect(try await pair.1.next() == .broadcast(senderID: pair.2, data: [UInt8(index)]))
                }
            }
        }

        /// A client hops across rooms on every shard and back; at each stop the room's members
        /// see it arrive and leave, and it relays there.
        @Test(arguments: workerCounts)
        func clientMovesBetweenShards(workers: Int) async throws {
            let rooms = (0..<max(workers, 2)).map { roomID(onShard: $0 % workers, of: workers, prefix: "hop\($0)") }
            try await withServer(workers: workers, rooms: rooms) { handle, port in
                var residents: [Client] = []
                for room in rooms {
                    let resident = try await Client.local(port)
                    _ = try await resident.joined(room)
                    residents.append(resident)
                }
                let traveller = try await Client.local(port)
                var travellerID: UUID?
                for lap in 0..<3 {
                    for (index, room) in rooms.enumerated() {
                        let id = try await traveller.joined(room)
                        if travellerID == nil { travellerID = id }
                        #expect(id == travellerID)
                        #expect(handle.clientRoom(id) == room)
                        let previous = (index + rooms.count - 1) % rooms.count
                        if lap > 0 || index > 0 {
                            #expect(try await residents[previous].next() == .playerLeft(clientID: id))
                        }
                        #expect(try await residents[index].next() == .playerJoined(clientID: id))
                        try await traveller.broadcast(([UInt8(lap), UInt8(index)]))
                        #expect(try await residents[index].next() == .broadcast(senderID: id, data: [UInt8(lap), UInt8(index)]))
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
                var clients: [Client] = []
                var roomless: [Client] = []
                for index in 0..<24 {
                    let client = try await Client.local(port)
                    let id = try await client.joined(rooms[index % rooms.count])
                    if index % 3 == 0 {
                        _ = try await client.joined(rooms[(index + 1) % rooms.count])
                        #expect(handle.clientRoom(id) == rooms[(index + 1) % rooms.count])
                    }
                    if index % 4 == 0 {
                        try await client.leave()
                        roomless.append(client)
                    } else {
                        clients.append(client)
                    }
                }
                for client in clients { try await client.broadcast(([7])) }
                for client in clients {
                    try await client.echoTest(([1]))
                    var message = try await client.next()
                    while message != .echoTest([1]) { message = try await client.next() }
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
