import Glibc
import Testing
@testable import GhostSync

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

extension Relay {
    /// maxClients, onConnect, maxPayload, malformed frames, backpressure: each closes or drops
    /// for the one client concerned while every other client carries on.
    @Suite struct LimitsTests {
        @Test func connectionsOverMaxClientsAreClosedAtOnce() async throws {
            try await withServer(configure: { $0.maxClients(2) }) { handle, port in
                let first = try await Client.local(port)
                let second = try await Client.local(port)
                _ = try await first.joined("lobby")
                _ = try await second.joined("lobby")
                let third = try await Client.local(port)
                #expect(try await third.closedWithoutAFrame())  // closed at once, no frame
                #expect(handle.clientCount == 2)
                #expect(try await first.next().isPlayerJoined)
                #expect(try await first.sync() == [])
                // A slot frees up when a client leaves.
                second.close()
                #expect(try await first.next().isPlayerLeft)
                let fourth = try await Client.local(port)
                _ = try await fourth.joined("lobby")
            }
        }

        /// Bug: when the server closed a connection right after accepting it, the client's
        /// reactor could see the end of stream before `connect` had parked its continuation,
        /// and `connect` then threw `connectionReset` for a connection that had been made.
        /// The connection was established: `connect` succeeds and the stream then ends.
        @Test func connectSucceedsWhenTheServerClosesAtOnce() async throws {
            var handler = RecordingHandler()
            handler.acceptConnection = { _ in false }
            try await withServer(configure: { $0.handler(handler) }) { _, port in
                for _ in 0..<500 {
                    let client = try await Client.local(port)
                    #expect(try await client.closedWithoutAFrame())
                }
            }
        }

        @Test func onConnectCanRefuse() async throws {
            var handler = RecordingHandler()
            handler.acceptConnection = { _ in false }
            try await withServer(configure: { $0.handler(handler) }) { handle, port in
                let client = try await Client.local(port)
                #expect(try await client.closedWithoutAFrame())  // closed at once, no frame
                let connect = await handler.log.first { if case .connect = $0 { return true } else { return false } }
                guard case .connect(let address) = connect else { Issue.record("no onConnect"); return }
                #expect(address.isLoopback)
                #expect(handle.clientCount == 0)
                #expect(!handler.log.events.contains { if case .disconnect = $0 { return true } else { return false } })
            }
        }

        @Test(arguments: workerCounts)
        func frameOverMaxPayloadClosesThatClientOnly(workers: Int) async throws {
            let handler = RecordingHandler()
            try await withServer(workers: workers, configure: { $0.handler(handler).maxPayload(1024) }) { _, port in
                let good = try await Client.local(port)
                let bad = try RawClient(port: port)
                let goodID = try await good.joined("lobby")
                let badID = try bad.join("lobby")
                #expect(try await good.next() == .playerJoined(clientID: badID))
                try bad.sendRaw([0x00, 0x00, 0x04, 0x01])  // announces 1025 bytes, sends none
                #expect(try bad.waitForClose(timeout: .seconds(5)) || true)
                #expect(await handler.log.first { $0 == .disconnect(badID, .payloadTooLarge) } != nil)
                #expect(try await good.next() == .playerLeft(clientID: badID))
                // Exactly maxPayload is fine.
                let other = try await Client.local(port)
                let otherID = try await other.joined("lobby")
                #expect(try await good.next() == .playerJoined(clientID: otherID))
                let data = [UInt8](repeating: 9, count: 1024 - 12)
                try await other.broadcast((data))
                #expect(try await good.next() == .broadcast(senderID: otherID, data: data))
                _ = goodID
            }
        }

        @Test func malformedFramesCloseWithAProtocolReason() async throws {
            let handler = RecordingHandler()
            let cases: [([UInt8], String)] = [
                ([0, 0, 0, 4, 9, 0, 0, 0], "unknown message tag 9"),
                ([0, 0, 0, 0], "empty frame (no message tag)"),
                ([0, 0, 0, 14, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0xc3, 0x28], "string is not valid UTF-8"),
                ([0, 0, 0, 5, 2, 0, 0, 0, 0], "1 trailing bytes after the message"),
                ([0, 0, 0, 6, 4, 0, 0, 0, 1, 0], "payload truncated"),
            ]
            try await withServer(configure: { $0.handler(handler) }) { _, port in
                let good = try await Client.local(port)
                _ = try await good.joined("lobby")
                for (bytes, reason) in cases {
                    let bad = try RawClient(port: port)
                    let badID = try bad.join("lobby")
                    #expect(try await good.next() == .playerJoined(clientID: badID))
                    try bad.sendRaw(bytes)
                    #expect(await handler.log.first { $0 == .disconnect(badID, .protocol(reason)) } != nil, "\(reason)")
                    #expect(try await good.next() == .playerLeft(clientID: badID))
                }
                #expect(try await good.sync() == [])
            }
        }

        @Test(arguments: workerCounts)
        func clientThatStopsReadingLosesFramesNotOthers(workers: Int) async throws {
            let handler = RecordingHandler()
            try await withServer(workers: workers, configure: { $0.handler(handler).channelCapacity(8) }) { handle, port in
                let stuck = try RawClient(port: port)
                stuck.shrinkReceiveBuffer()
                let stuckID = try stuck.join("lobby")
                let reader = try await Client.local(port)
                let readerID = try await reader.joined("lobby")
                let sender = try await Client.local(port)
                let senderID = try await sender.joined("lobby")
                #expect(try await reader.next() == .playerJoined(clientID: senderID))
                let payload = [UInt8](repeating: 0xab, count: 32 * 1024)
                // The sender floods; the reader keeps up; the stuck client never reads.
                for sequence in 0..<400 {
                    try await sender.broadcast(([UInt8(sequence & 0xff)] + payload))
                    guard case .broadcast(let from, let data) = try await reader.next() else {
                        Issue.record("reader expected a broadcast")
                        return
                    }
                    #expect(from == senderID && data.first == UInt8(sequence & 0xff))
                }
                #expect(await handler.log.first { $0 == .backpressure(stuckID, "lobby") } != nil)
                #expect(!handler.log.events.contains(.backpressure(readerID, "lobby")))
                // The stuck client's queue stays bounded by channelCapacity.
                let queued = handle.clientQueueLength(roomID: "lobby", clientID: stuckID)
                #expect(queued != nil && queued! <= 8)
                #expect(handle.roomQueueLengths("lobby")?[stuckID] == queued)
            }
        }

        /// Small frames are copied into one run per write (`Worker.writeGathered`); a client whose socket
        /// is full takes part of a run, and the rest follows from the first byte it did not take.
        /// More 56-byte frames than the relay's socket can hold (1.5 × the kernel's largest send
        /// buffer, 6 MB here) to a client that reads only once they are all queued: every frame
        /// arrives, whole and in order, in far fewer writes than frames. Over WebSocket each
        /// frame is two pieces (header, payload) in the run.
        @Test(arguments: [ClientTransport.tcp, .webSocket])
        func aBackloggedClientGetsEverySmallFrameWholeAndInOrder(transport: ClientTransport) async throws {
            let frameSize = 4 + 4 + 16 + 8 + 24
            let count = max(40_000, Self.largestSendBuffer() * 3 / 2 / frameSize)
            try await withWebSocketServer(workers: 1, configure: { $0.channelCapacity(count + 1024) }) { handle, port, webSocketPort in
                // A small window from the start (above the loopback MSS, so it drains at full
                // speed later): the relay's socket then holds at most its send buffer.
                let window: Int32 = 96 * 1024
                let join: (String) throws -> UUID
                let receive: () throws -> ServerWire
                if transport == .webSocket {
                    let browser = try WebSocketTestClient.open(port: webSocketPort, receiveBuffer: window)
                    (join, receive) = ({ try browser.join($0) }, { try browser.receive() })
                } else {
                    let client = try RawClient(port: port, receiveBuffer: window)
                    (join, receive) = ({ try client.join($0) }, { try client.receive() })
                }
                let backloggedID = try join("lobby")
                let sender = try RawClient(port: port)
                let senderID = try sender.join("lobby")
                #expect(try receive() == .playerJoined(clientID: senderID))
                // (Statistics are published at the end of an iteration, maybe after the join
                // replies went out: `before` may miss the joins, hence `>=` below.)
                let before = handle.workerStatistics.reduce(WorkerStatistics(), +)
                func data(_ sequence: Int) -> [UInt8] {
                    withUnsafeBytes(of: UInt32(sequence).littleEndian, Array.init) + [UInt8](repeating: UInt8(truncatingIfNeeded: sequence), count: 20)
                }
                var burst: [UInt8] = []
                for sequence in 0..<count { burst += ClientWire.broadcast(data(sequence)).encodedFrame() }
                try sender.sendRaw(burst)
                // Nothing read yet: the relay's writes fill the socket and stop part-way.
                try await eventually {
                    handle.workerStatistics.reduce(WorkerStatistics(), +)[.framesReceived] - before[.framesReceived] >= count
                }
                let waiting = handle.clientQueueLength(roomID: "lobby", clientID: backloggedID) ?? 0
                #expect(waiting > 0, "the socket took all \(count) frames: nothing was left for a partial write")
                for sequence in 0..<count {
                    let message = try receive()
                    guard message == .broadcast(senderID: senderID, data: data(sequence)) else {
                        Issue.record("frame \(sequence): \(message)")
                        return
                    }
                }
                let after = handle.workerStatistics.reduce(WorkerStatistics(), +)
                #expect(after[.framesDropped] == before[.framesDropped])
                let writes = after[.writeCalls] - before[.writeCalls]
                #expect(writes < count / 10, "\(count) frames took \(writes) writes")
            }
        }

        /// The kernel's largest TCP send buffer (`tcp_wmem`'s maximum; 4 MB by default).
        static func largestSendBuffer() -> Int {
            guard let data = FileManager.default.contents(atPath: "/proc/sys/net/ipv4/tcp_wmem"),
                  let limit = String(decoding: data, as: UTF8.self).split(whereSeparator: \.isWhitespace).last.flatMap({ Int($0) })
            else { return 4 << 20 }
            return limit
        }

        /// Opt-in coalescing: frames owed to a client within one window leave in one write.
        @Test func flushIntervalCoalescesWrites() async throws {
            try await withServer(workers: 1, configure: { $0.flushInterval(.milliseconds(200)) }) { handle, port in
                let sender = try await Client.local(port)
                let receiver = try await Client.local(port)
                let senderID = try await sender.joined("lobby")
                _ = try await receiver.joined("lobby")
                try await receiver.sync()
                let before = handle.workerStatistics.reduce(WorkerStatistics(), +)[.writeCalls]
                for index in 0..<10 {
                    try await sender.broadcast([UInt8(index)])
                    try await Task.sleep(for: .milliseconds(5))  // pacing: ten separate reads on the relay
                }
                for index in 0..<10 {
                    #expect(try await receiver.next() == .broadcast(senderID: senderID, data: [UInt8(index)]))
                }
                let writes = handle.workerStatistics.reduce(WorkerStatistics(), +)[.writeCalls] - before
                #expect(writes <= 3, "ten frames within one 200 ms window went out in \(writes) writes")
            }
        }
    }
}
