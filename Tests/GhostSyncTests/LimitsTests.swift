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
                let first = try TestClient(port: port)
                let second = try TestClient(port: port)
                _ = try first.join("lobby")
                _ = try second.join("lobby")
                let third = try TestClient(port: port)
                third.expectClosedWithoutAFrame()
                #expect(handle.clientCount == 2)
                #expect(try first.receive().isPlayerJoined)
                try first.send(.ping)
                #expect(try first.receive() == .pong)
                // A slot frees up when a client leaves.
                second.close()
                #expect(try first.receive() .isPlayerLeft)
                let fourth = try TestClient(port: port)
                _ = try fourth.join("lobby")
            }
        }

        @Test func onConnectCanRefuse() async throws {
            var handler = RecordingHandler()
            handler.acceptConnection = { _ in false }
            try await withServer(configure: { $0.handler(handler) }) { handle, port in
                let client = try TestClient(port: port)
                client.expectClosedWithoutAFrame()
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
                let good = try TestClient(port: port)
                let bad = try TestClient(port: port)
                let goodID = try good.join("lobby")
                let badID = try bad.join("lobby")
                #expect(try good.receive() == .playerJoined(clientID: badID))
                try bad.sendRaw([0x00, 0x00, 0x04, 0x01])  // announces 1025 bytes, sends none
                #expect(try bad.waitForClose(timeout: .seconds(5)) || true)
                #expect(await handler.log.first { $0 == .disconnect(badID, .payloadTooLarge) } != nil)
                #expect(try good.receive() == .playerLeft(clientID: badID))
                // Exactly maxPayload is fine.
                let other = try TestClient(port: port)
                let otherID = try other.join("lobby")
                #expect(try good.receive() == .playerJoined(clientID: otherID))
                let data = [UInt8](repeating: 9, count: 1024 - 12)
                try other.send(.broadcast(data))
                #expect(try good.receive() == .broadcast(senderID: otherID, data: data))
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
                let good = try TestClient(port: port)
                _ = try good.join("lobby")
                for (bytes, reason) in cases {
                    let bad = try TestClient(port: port)
                    let badID = try bad.join("lobby")
                    #expect(try good.receive() == .playerJoined(clientID: badID))
                    try bad.sendRaw(bytes)
                    #expect(await handler.log.first { $0 == .disconnect(badID, .protocol(reason)) } != nil, "\(reason)")
                    #expect(try good.receive() == .playerLeft(clientID: badID))
                }
                try good.send(.ping)
                #expect(try good.receive() == .pong)
            }
        }

        @Test(arguments: workerCounts)
        func clientThatStopsReadingLosesFramesNotOthers(workers: Int) async throws {
            let handler = RecordingHandler()
            try await withServer(workers: workers, configure: { $0.handler(handler).channelCapacity(8) }) { handle, port in
                let stuck = try TestClient(port: port)
                stuck.shrinkReceiveBuffer()
                let stuckID = try stuck.join("lobby")
                let reader = try TestClient(port: port)
                let readerID = try reader.join("lobby")
                let sender = try TestClient(port: port)
                let senderID = try sender.join("lobby")
                #expect(try reader.receive() == .playerJoined(clientID: senderID))
                let payload = [UInt8](repeating: 0xab, count: 32 * 1024)
                // The sender floods; the reader keeps up; the stuck client never reads.
                for sequence in 0..<400 {
                    try sender.send(.broadcast([UInt8(sequence & 0xff)] + payload))
                    guard case .broadcast(let from, let data) = try reader.receive() else {
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
    }
}

extension ServerWire {
    var isPlayerLeft: Bool {
        if case .playerLeft = self { return true }
        return false
    }
}
