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
    /// The async `Client` against the `ShardedServer` and against misbehaving stand-in servers.
    @Suite struct ClientTests {
        @Test func joinBroadcastAndEvents() async throws {
            try await withServer { _, port in
                let alice = try await Client.local(port)
                let bob = try await Client.local(port)
                let aliceID = try await alice.joined("lobby")
                #expect(alice.clientID == aliceID)
                let bobID = try await bob.joined("lobby")
                #expect(try await alice.next() == .playerJoined(clientID: bobID))
                try await bob.broadcast(Array("hello".utf8))
                try await bob.broadcast("ünïcode".utf8)           // a non-array collection
                try await bob.broadcast([UInt8]().lazy.map { $0 })  // not contiguous: copied once
                var iterator = alice.events.makeAsyncIterator()
                #expect(try await iterator.next() == .broadcast(senderID: bobID, data: Array("hello".utf8)))
                #expect(try await iterator.next() == .broadcast(senderID: bobID, data: Array("ünïcode".utf8)))
                #expect(try await iterator.next() == .broadcast(senderID: bobID, data: []))
                try await bob.leave()
                #expect(try await alice.next() == .playerLeft(clientID: bobID))
                try await bob.broadcast([1])
                #expect(try await bob.next() == .error("not in a room"))
                try await bob.requestJoin("nowhere")
                #expect(try await bob.next() == .error("room not found: nowhere"))
            }
        }

        @Test func pingsAndPongsAreInvisible() async throws {
            try await withServer { _, port in
                let client = try await Client.local(port)
                try await client.ping()
                try await client.ping()
                #expect(try await client.sync() == [])  // the two pongs were swallowed
            }
        }

        @Test func hostNamesAndIPv6Literals() async throws {
            try await withServer { _, port in
                let client = try await Client.connect(to: "localhost:\(port)")
                _ = try await client.joined("lobby")
            }
            let handle = try await ShardedServer.builder().bind("[::1]:0").workers(1).build().run()
            try handle.createRoom("lobby")
            let client = try await Client.connect(to: "[::1]:\(handle.localAddress.port)")
            _ = try await client.joined("lobby")
            #expect(client.remoteAddress.isIPv6)
            await handle.shutdown()
        }

        @Test func connectionRefusedSaysWhy() async throws {
            let raw = try RawServer()
            let port = raw.port
            raw.closeListener()  // nothing listens there now
            do {
                _ = try await Client.connect(to: "127.0.0.1:\(port)")
                Issue.record("connected to a closed port")
            } catch {
                guard case .connectionRefused(let message) = error else { Issue.record("got \(error)"); return }
                #expect(message.contains("no ghost-sync server is listening"))
            }
            await #expect(throws: SyncError.self) { _ = try await Client.connect(to: "not an address") }
        }

        @Test func frameOverTheClientsMaxPayload() async throws {
            let raw = try RawServer()
            let client = try await Client.builder().maxPayload(1024).connect(to: "127.0.0.1:\(raw.port)")
            let fd = try raw.accept()
            defer { Glibc.close(fd) }
            RawServer.write(fd, ServerWire.broadcast(senderID: UUID(), data: [1, 2]).encodedFrame())
            // The limit is the relay's maxPayload plus the 16 bytes of a relayed sender ID.
            RawServer.write(fd, [0x00, 0x00, 0x04, 0x11])  // announces 1041 bytes
            #expect(try await client.next().isBroadcast)
            await #expect(throws: SyncError.payloadTooLarge(length: 1041, limit: 1040)) { _ = try await client.recvWithin() }
            #expect(try await client.recvWithin() == nil)
            await #expect(throws: SyncError.connectionReset) { try await client.ping() }
        }

        /// Issue 10: `join` waits for the answer, keeps what arrives first, and times out.
        @Test func joinWaitsForTheAnswer() async throws {
            try await withServer(rooms: ["lobby", "arena"]) { _, port in
                let client = try await Client.local(port)
                let id = try await client.join("lobby")
                #expect(client.clientID == id)
                await #expect(throws: SyncError.joinRefused("room not found: nowhere")) { try await client.join("nowhere") }
                // Events that arrive before the answer stay for recv(), in order.
                let other = try await Client.local(port)
                let otherID = try await other.join("lobby")
                try await other.broadcast([1])
                try await other.broadcast([2])
                #expect(try await client.join("arena") == id)
                #expect(try await client.next() == .playerJoined(clientID: otherID))
                #expect(try await client.next() == .broadcast(senderID: otherID, data: [1]))
                #expect(try await client.next() == .broadcast(senderID: otherID, data: [2]))
            }
        }

        @Test func joinTimesOutWhenNoAnswerComes() async throws {
            let raw = try RawServer()
            let client = try await Client.builder().connect(to: "127.0.0.1:\(raw.port)")
            let fd = try raw.accept()
            defer { Glibc.close(fd) }
            await #expect(throws: SyncError.timedOut("the answer to joining lobby")) {
                try await client.join("lobby", timeout: .milliseconds(200))
            }
            // Nothing was lost meanwhile: a frame sent now is still received.
            RawServer.write(fd, ServerWire.joined(clientID: UUID(), roomID: "lobby").encodedFrame())
            #expect(try await client.next().isJoined)
        }

        @Test func defaultMaxPayloadIs256KiB() async throws {
            #expect(Client.builder().maxPayload == 256 * 1024)
        }

        /// Issue 10, defect 2: a client and a relay given the same maxPayload agree. A broadcast
        /// of exactly the relay's maxPayload arrives 16 bytes larger (the sender's ID); the
        /// client used to reject it as over its limit.
        @Test func relayedBroadcastAtTheServersMaxPayloadReachesAClientWithTheSameLimit() async throws {
            let limit = 256 * 1024  // the Client's default
            try await withServer(configure: { $0.maxPayload(limit) }) { _, port in
                let sender = try await Client.local(port)
                let receiver = try await Client.local(port)
                _ = try await receiver.joined("lobby")
                let senderID = try await sender.joined("lobby")
                #expect(try await receiver.next() == .playerJoined(clientID: senderID))
                let data = [UInt8](repeating: 0xA5, count: limit - WireSize.tag - 8)  // client payload == limit
                try await sender.broadcast(data)
                #expect(try await receiver.next() == .broadcast(senderID: senderID, data: data))
            }
        }

        @Test func serverClosingMidFrame() async throws {
            let raw = try RawServer()
            let client = try await Client.local(raw.port)
            let fd = try raw.accept()
            let frame = ServerWire.error("cut short").encodedFrame()
            RawServer.write(fd, Array(frame.prefix(7)))
            Glibc.close(fd)
            // A close with a frame half sent ends the stream; the partial frame is not an event.
            #expect(try await client.waitForEnd())
        }

        @Test func malformedServerFrameIsAProtocolError() async throws {
            let raw = try RawServer()
            let client = try await Client.local(raw.port)
            let fd = try raw.accept()
            defer { Glibc.close(fd) }
            RawServer.write(fd, [0, 0, 0, 4, 42, 0, 0, 0])
            await #expect(throws: SyncError.protocol("unknown message tag 42")) { _ = try await client.recvWithin() }
        }

        @Test func cancellingRecvLosesNoFrame() async throws {
            try await withServer { _, port in
                let sender = try await Client.local(port)
                let receiver = try await Client.local(port)
                let senderID = try await sender.joined("lobby")
                _ = try await receiver.joined("lobby")
                // Start a recv, cancel it while it waits.
                let waiting = Task { try await receiver.recv() }
                try await Task.sleep(for: .milliseconds(20))  // let it park (timing only; correctness does not depend on it)
                waiting.cancel()
                await #expect(throws: CancellationError.self) { _ = try await waiting.value }
                // Many cancellations racing with arrivals: every frame still arrives, in order.
                for round in 0..<50 {
                    let racer = Task { try await receiver.recv() }
                    try await sender.broadcast([UInt8(round)])
                    racer.cancel()
                    if let event = try? await racer.value {
                        #expect(event == .broadcast(senderID: senderID, data: [UInt8(round)]))
                    } else {
                        #expect(try await receiver.next() == .broadcast(senderID: senderID, data: [UInt8(round)]))
                    }
                }
                #expect(try await receiver.sync() == [])
            }
        }

        @Test func concurrentSendersNeverInterleave() async throws {
            try await withServer(configure: { $0.maxPayload(256 * 1024) }) { _, port in
                let sender = try await Client.local(port)
                let receiver = try await Client.local(port)
                _ = try await receiver.joined("lobby")
                let senderID = try await sender.joined("lobby")
                #expect(try await receiver.next() == .playerJoined(clientID: senderID))
                let tasks = 8
                let perTask = 25
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for task in 0..<tasks {
                        group.addTask {
                            for sequence in 0..<perTask {
                                // Large frames, so writes are partial and must queue whole.
                                let data = [UInt8(task), UInt8(sequence)] + [UInt8](repeating: UInt8(task), count: 60_000)
                                try await sender.broadcast(data)
                            }
                        }
                    }
                    try await group.waitForAll()
                }
                var next = [Int](repeating: 0, count: tasks)
                for _ in 0..<(tasks * perTask) {
                    guard case .broadcast(let from, let data) = try await receiver.next() else {
                        Issue.record("expected a broadcast")
                        return
                    }
                    #expect(from == senderID && data.count == 60_002)
                    let task = Int(data[0])
                    #expect(Int(data[1]) == next[task])
                    #expect(data.dropFirst(2).allSatisfy { $0 == UInt8(task) })
                    next[task] += 1
                }
                #expect(next == [Int](repeating: perTask, count: tasks))
            }
        }

        /// Keepalive is invisible: with a short ping interval, a client that only awaits events
        /// for several intervals stays connected.
        @Test func awaitingEventsKeepsTheConnectionAlive() async throws {
            let handler = RecordingHandler()
            try await withServer(configure: {
                $0.handler(handler).pingInterval(.milliseconds(50)).idleTimeout(.milliseconds(200))
            }) { handle, port in
                let client = try await Client.local(port)
                let id = try await client.joined("lobby")
                let waiting = Task { try await client.recv() }
                try await Task.sleep(for: .milliseconds(600))  // twelve ping intervals, three idle timeouts
                #expect(handle.clientRoom(id) == "lobby")
                waiting.cancel()
                _ = try? await waiting.value
                #expect(!handler.log.events.contains { if case .disconnect = $0 { return true } else { return false } })
            }
        }

        @Test func twoThousandClientsInOneRoom() async throws {
            // Capacity for the whole PlayerJoined storm (each early member is owed ~2,000 frames),
            // so that no frame may be dropped and the final broadcast must reach everyone.
            try await withServer(configure: { $0.maxClients(4096).channelCapacity(4096) }) { handle, port in
                let count = 2000
                var clients: [Client] = []
                for _ in 0..<count {
                    let client = try await Client.local(port)
                    try await client.requestJoin("lobby")
                    clients.append(client)
                }
                // Joins on other workers may still be in flight (handoffs): wait until all landed.
                try await eventually { handle.roomClientCount("lobby") == count }
                let sender = try await Client.local(port)
                let senderID = try await sender.joined("lobby")
                try await sender.broadcast(Array("to everyone".utf8))
                // Each receiver sees its own joined, the later joins, then the broadcast.
                try await withThrowingTaskGroup(of: Bool.self) { group in
                    for client in clients {
                        group.addTask {
                            try await within(.seconds(30), "the broadcast") {
                                while let event = try await client.recv() {
                                    if case .broadcast(let from, let data) = event {
                                        return from == senderID && data == Array("to everyone".utf8)
                                    }
                                }
                                return false
                            }
                        }
                    }
                    var received = 0
                    for try await ok in group where ok {
                        received += 1
                            }
                    #expect(received == count)
                }
                #expect(handle.workerStatistics.reduce(WorkerStatistics(), +)[.framesDropped] == 0)
            }
        }

        @Test func closeEndsPendingReceives() async throws {
            try await withServer { _, port in
                let client = try await Client.local(port)
                let waiting = Task { try await client.recv() }
                try await Task.sleep(for: .milliseconds(10))
                client.close()
                #expect(try await waiting.value == nil)
                #expect(try await client.recvWithin() == nil)
                await #expect(throws: SyncError.connectionReset) { try await client.broadcast([1]) }
            }
        }

        @Test func serverShutdownIsACleanEnd() async throws {
            let handle = try await ShardedServer.builder().bind("127.0.0.1:0").workers(2).build().run()
            try handle.createRoom("lobby")
            let client = try await Client.local(handle.localAddress.port)
            _ = try await client.joined("lobby")
            await handle.shutdown()
            #expect(try await client.waitForEnd())
        }
    }
}

extension ServerEvent {
    var isBroadcast: Bool {
        if case .broadcast = self { return true }
        return false
    }
}

extension ServerEvent {
    var isJoined: Bool {
        if case .joined = self { return true }
        return false
    }
}
