import Glibc
import Testing
@testable import GhostSync

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

extension Relay {
    /// The real `ghost-sync join` and `send` executables: staying connected while stdin is open
    /// and idle, and saying how the connection ended.
    @Suite struct JoinCommandTests {
        /// The bug this guards against: after printing an event, `join` called `fflush(nil)`,
        /// which waited for stdin's lock, held by the reader blocked in `readLine()`; `join` stopped
        /// receiving, never answered the next ping, and the relay dropped it.
        @Test func joinStaysConnectedWithAnIdleOpenStandardInput() throws {
            // A ping every 400 ms, each to be answered within 400 ms; 1 s of silence drops a client.
            let relay = try RelayProcess(["--ping-interval", "400ms", "--idle-timeout", "1s"])
            let joiner = try Subprocess("ghost-sync", ["join", "lobby", "--addr", relay.relay], pipingStandardInput: true)
            let joined = try joiner.readLine(timeout: .seconds(10))
            #expect(joined.hasPrefix("joined lobby as "))
            let joinerID = try #require(UUID(uuidString: String(joined.dropFirst("joined lobby as ".count))))
            let peer = try RawClient(port: relay.relayPort)
            let peerID = try peer.join("lobby").uuidString.lowercased()
            #expect(try joiner.readLine(timeout: .seconds(10)) == "+\(peerID) joined")
            try peer.send(.broadcast(Array("one".utf8)))
            #expect(try joiner.readLine(timeout: .seconds(10)) == "\(peerID): one")
            // Six pings on the peer's connection, which opened after the joiner's: the joiner has
            // had at least as many to answer, and 2.4 s of an idle stdin.
            var pings = 0
            while pings < 6 {
                switch try peer.receive(answeringPings: false) {
                case .ping:
                    pings += 1
                    try peer.send(.pong)
                case .playerLeft(let clientID):
                    Issue.record("the relay dropped \(clientID) after \(pings) pings: \(relay.process.stderrText.suffix(300))")
                    return
                case let other:
                    Issue.record("unexpected \(other)")
                }
            }
            // Still connected both ways: a line typed now reaches the peer, and the peer's next
            // broadcast is printed.
            try joiner.writeStandardInput("typed after a while\n")
            #expect(try peer.receive() == .broadcast(senderID: joinerID, data: Array("typed after a while".utf8)))
            try peer.send(.broadcast(Array("two".utf8)))
            #expect(try joiner.readLine(timeout: .seconds(10)) == "\(peerID): two")
            joiner.closeStandardInput()  // the end of stdin stops only the sending side
            try peer.send(.broadcast(Array("three".utf8)))
            #expect(try joiner.readLine(timeout: .seconds(10)) == "\(peerID): three")
        }

        @Test func joinExitsWithAMessageWhenTheRelayStops() throws {
            let relay = try RelayProcess()
            let joiner = try Subprocess("ghost-sync", ["join", "lobby"], environment: ["GHOSTSYNC_ADDR": relay.relay], pipingStandardInput: true)
            #expect(try joiner.readLine().hasPrefix("joined lobby as "))
            relay.process.signal(SIGTERM)
            #expect(try relay.process.wait() == 0)
            #expect(try joiner.wait() == 1)
            #expect(joiner.stderrText == "Error: the relay closed the connection\n")
        }

        /// A scripted relay: `join` reports the last Error text it got, and a reset as a reset.
        @Test func joinReportsTheRelaysLastErrorAndResets() throws {
            let server = try RawServer()
            let joiner = try Subprocess("ghost-sync", ["join", "lobby", "--addr", "127.0.0.1:\(server.port)"], pipingStandardInput: true)
            let connection = try ScriptedRelayConnection(acceptedBy: server)
            try connection.expect(.joinRoom("lobby"))
            let clientID = UUID()
            connection.send(.joined(clientID: clientID, roomID: "lobby"))
            #expect(try joiner.readLine() == "joined lobby as \(clientID.uuidString.lowercased())")
            connection.send(.error("kicked by the test"))
            #expect(try joiner.readLine() == "error: kicked by the test")
            connection.closeCleanly()
            #expect(try joiner.wait() == 1)
            #expect(joiner.stderrText == "Error: the relay closed the connection (its last error: kicked by the test)\n")

            let resetJoiner = try Subprocess("ghost-sync", ["join", "lobby", "--addr", "127.0.0.1:\(server.port)"], pipingStandardInput: true)
            let resetConnection = try ScriptedRelayConnection(acceptedBy: server)
            try resetConnection.expect(.joinRoom("lobby"))
            resetConnection.send(.joined(clientID: clientID, roomID: "lobby"))
            #expect(try resetJoiner.readLine().hasPrefix("joined lobby as "))
            resetConnection.reset()
            #expect(try resetJoiner.wait() == 1)
            #expect(resetJoiner.stderrText == "Error: the connection to the relay was reset\n")
        }

        @Test func sendExitsWithAMessageWhenTheRelayClosesFirst() throws {
            let server = try RawServer()
            let sender = try Subprocess("ghost-sync", ["send", "lobby", "hello"], environment: ["GHOSTSYNC_ADDR": "127.0.0.1:\(server.port)"])
            let connection = try ScriptedRelayConnection(acceptedBy: server)
            try connection.expect(.joinRoom("lobby"))
            connection.send(.joined(clientID: UUID(), roomID: "lobby"))
            // The broadcast and the round trip that would confirm it; the relay closes instead.
            try connection.expect(.broadcast(Array("hello".utf8)))
            try connection.expect(.echoTest([]))
            connection.closeCleanly()
            #expect(try sender.wait() == 1)
            #expect(sender.stderrText == "Error: the relay closed the connection\n")
        }
    }
}

/// The relay's side of one connection accepted by a `RawServer`, played by hand (blocking
/// socket, every wait bounded).
private final class ScriptedRelayConnection {
    private let fd: Int32
    private var isOpen = true

    init(acceptedBy server: RawServer) throws {
        fd = try server.accept()
    }

    deinit { if isOpen { close(fd) } }

    /// Reads the next client frame and checks that it is `message`.
    func expect(_ message: ClientWire, timeout: Duration = .seconds(10)) throws {
        let expected = message.encodedFrame()
        var received: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: expected.count)
        let deadline = ContinuousClock.now + timeout
        while received.count < expected.count {
            var descriptor = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard ContinuousClock.now < deadline, poll(&descriptor, 1, 100) >= 0 else { throw TimedOut(what: "\(message)") }
            if descriptor.revents == 0 { continue }
            let count = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, expected.count - received.count, 0) }
            guard count > 0 else { throw TimedOut(what: "\(message), but the connection closed") }
            received += chunk[0..<count]
        }
        guard received == expected else { throw TimedOut(what: "\(message), got \(received)") }
    }

    func send(_ message: ServerWire) {
        RawServer.write(fd, message.encodedFrame())
    }

    /// Ends the stream (FIN), as a relay closing a connection does.
    func closeCleanly() {
        shutdown(fd, Int32(SHUT_WR))
    }

    /// Closes with a reset (SO_LINGER of zero) instead of an end of stream.
    func reset() {
        var linger = Glibc.linger(l_onoff: 1, l_linger: 0)
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<Glibc.linger>.size))
        close(fd)
        isOpen = false
    }
}
