import Testing
@testable import GhostSync

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

extension Relay {
    /// Ping cadence, ping timeout and idle timeout, with short intervals.
    @Suite struct KeepaliveTests {
        @Test func answeringPingsKeepsAClientAlive() async throws {
            let handler = RecordingHandler()
            try await withServer(configure: {
                $0.handler(handler).pingInterval(.milliseconds(50)).idleTimeout(.milliseconds(120))
            }) { handle, port in
                let client = try RawClient(port: port)
                let id = try client.join("lobby")
                // Over ten ping intervals the client only answers pings (inside receive).
                var pings = 0
                let deadline = ContinuousClock.now + .milliseconds(500)
                while ContinuousClock.now < deadline {
                    if let message = try client.receiveIfAny(within: .milliseconds(20), answeringPings: false) {
                        #expect(message == .ping)
                        pings += 1
                        try client.send(.pong)
                    }
                }
                #expect(pings >= 5)
                #expect(handle.clientRoom(id) == "lobby")
                #expect(!handler.log.events.contains { if case .disconnect = $0 { return true } else { return false } })
            }
        }

        @Test func firstPingComesAFullIntervalAfterConnect() async throws {
            try await withServer(configure: { $0.pingInterval(.milliseconds(300)) }) { _, port in
                let client = try RawClient(port: port)
                let start = ContinuousClock.now
                #expect(try client.receive(timeout: .seconds(5), answeringPings: false) == .ping)
                #expect(ContinuousClock.now - start >= .milliseconds(290))
            }
        }

        @Test func silentClientIsDisconnectedForIdleness() async throws {
            let handler = RecordingHandler()
            try await withServer(configure: {
                $0.handler(handler).idleTimeout(.milliseconds(200)).pingInterval(.seconds(30))
            }) { handle, port in
                let watcher = try RawClient(port: port)
                _ = try watcher.join("lobby")
                let silent = try RawClient(port: port)
                let silentID = try silent.join("lobby")
                #expect(try watcher.receive() == .playerJoined(clientID: silentID))
                // The watcher stays active (a Ping round trip every 20 ms); the other never sends again.
                let deadline = ContinuousClock.now + .seconds(5)
                var leftSeen = false
                while !leftSeen && ContinuousClock.now < deadline {
                    try watcher.send(.ping)
                    var message = try watcher.receive()
                    if message == .playerLeft(clientID: silentID) {
                        leftSeen = true
                        message = try watcher.receive()
                    }
                    #expect(message == .pong)
                    try await Task.sleep(for: .milliseconds(20))  // pacing the watcher's traffic, not synchronisation
                }
                #expect(leftSeen)
                #expect(await handler.log.first { $0 == .disconnect(silentID, .idleTimeout) } != nil)
                #expect(try silent.waitForClose())
                #expect(handle.roomClients("lobby")?.contains(silentID) == false)
            }
        }

        @Test func clientThatNeverAnswersPingTimesOut() async throws {
            let handler = RecordingHandler()
            try await withServer(configure: {
                $0.handler(handler).pingInterval(.milliseconds(80)).idleTimeout(.seconds(30))
            }) { _, port in
                let client = try RawClient(port: port)
                let id = try client.join("lobby")
                // It keeps sending (its own Pings, so it is never idle) but never answers a Ping.
                var closed = false
                let deadline = ContinuousClock.now + .seconds(5)
                while !closed && ContinuousClock.now < deadline {
                    try? client.send(.ping)
                    do {
                        _ = try client.receiveIfAny(within: .milliseconds(20), answeringPings: false)
                    } catch {
                        closed = true
                    }
                }
                #expect(closed)
                #expect(await handler.log.first { $0 == .disconnect(id, .pingTimeout) } != nil)
            }
        }

        /// A ping tick in the middle of a frame must not corrupt it (the original could cancel
        /// a read mid-frame on its ping timer).
        @Test func pingTickNeverDisturbsAHalfReadFrame() async throws {
            try await withServer(configure: { $0.pingInterval(.milliseconds(200)).idleTimeout(.seconds(30)) }) { _, port in
                let sender = try RawClient(port: port)
                let receiver = try RawClient(port: port)
                let senderID = try sender.join("lobby")
                _ = try receiver.join("lobby")
                let frame = ClientWire.broadcast(Array("split across a ping".utf8)).encodedFrame()
                try sender.sendRaw(Array(frame.prefix(9)))
                // A ping tick comes while the frame is half sent; the Pong goes after the frame's rest.
                #expect(try sender.receive(answeringPings: false).isPlayerJoined)
                #expect(try sender.receive(answeringPings: false) == .ping)
                try sender.sendRaw(Array(frame.dropFirst(9)))
                try sender.send(.pong)
                #expect(try receiver.receive() == .broadcast(senderID: senderID, data: Array("split across a ping".utf8)))
            }
        }
    }
}
