import Glibc
import Synchronization
import Testing
@testable import GhostSync

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Starts a server with the WebSocket transport on an ephemeral port too.
func withWebSocketServer(
    workers: Int = 2,
    rooms: [String] = ["lobby"],
    configure: (ShardedServerBuilder) -> ShardedServerBuilder = { $0 },
    webSocket: (inout WebSocketConfiguration) -> Void = { _ in },
    _ body: (ServerHandle, _ tcpPort: UInt16, _ webSocketPort: UInt16) async throws -> Void
) async throws {
    var settings = WebSocketConfiguration(bindAddress: "127.0.0.1:0")
    settings.resources = ["/": HTTPResource(contentType: "text/html; charset=utf-8", body: Array("<h1>demo</h1>".utf8))]
    webSocket(&settings)
    try await withServer(workers: workers, rooms: rooms, configure: { configure($0.webSocket(settings)) }) { handle, port in
        try await body(handle, port, handle.webSocketAddress!.port)
    }
}

/// Records which transport each admitted client came over.
private final class TransportRecorder: ServerHandler, Sendable {
    let transports = Mutex<[UUID: ClientTransport]>([:])
    let refuseWebSocket: Bool

    init(refuseWebSocket: Bool = false) { self.refuseWebSocket = refuseWebSocket }

    func onConnect(_ client: ConnectingClient) -> Bool {
        transports.withLock { $0[client.id] = client.transport }
        return !(refuseWebSocket && client.transport == .webSocket)
    }
}

extension Relay {
    @Suite struct WebSocketRelayTests {
        @Test(arguments: workerCounts)
        func webSocketAndTCPMembersShareARoom(workers: Int) async throws {
            let handler = RecordingHandler()
            let elsewhere = roomID(onShard: workers - 1, of: workers, prefix: "elsewhere")
            try await withWebSocketServer(workers: workers, rooms: ["lobby", elsewhere], configure: { $0.handler(handler) }) { _, tcpPort, wsPort in
                let browser = try WebSocketTestClient.open(port: wsPort)
                let browserID = try browser.join("lobby")
                let tcp = try RawClient(port: tcpPort)
                let tcpID = try tcp.join("lobby")
                #expect(try browser.receive() == .playerJoined(clientID: tcpID))
                // A second browser starts in another shard's room, then moves (a handoff).
                let second = try WebSocketTestClient.open(port: wsPort)
                _ = try second.join(elsewhere)
                let secondID = try second.join("lobby")
                #expect(try browser.receive() == .playerJoined(clientID: secondID))
                #expect(try tcp.receive() == .playerJoined(clientID: secondID))
                // Every byte value, both ways, the sender excluded.
                let data = (0...255).map { UInt8($0) }
                try browser.send(.broadcast(data))
                #expect(try tcp.receive() == .broadcast(senderID: browserID, data: data))
                #expect(try second.receive() == .broadcast(senderID: browserID, data: data))
                try tcp.send(.broadcast(Array("from tcp".utf8)))
                #expect(try browser.receive() == .broadcast(senderID: tcpID, data: Array("from tcp".utf8)))
                #expect(try second.receive() == .broadcast(senderID: tcpID, data: Array("from tcp".utf8)))
                // Echo and the relay's own Ping/Pong work over WebSocket too.
                try browser.send(.echoTest([1, 2, 3]))
                #expect(try browser.receive() == .echoTest([1, 2, 3]))
                try browser.send(.ping)
                #expect(try browser.receive() == .pong)
                // A browser that closes is a PlayerLeft for the others.
                try second.sendFrame(opcode: .close, [0x03, 0xE8])
                #expect(try second.receiveClose().code == 1000)
                #expect(try second.waitForEndOfStream())
                #expect(try browser.receive() == .playerLeft(clientID: secondID))
                #expect(try tcp.receive() == .playerLeft(clientID: secondID))
                #expect(await handler.log.first { $0 == .disconnect(secondID, .connectionClosed) } != nil)
            }
        }

        @Test func onConnectSeesTheTransportAndCanRefuse() async throws {
            let recorder = TransportRecorder()
            try await withWebSocketServer(configure: { $0.handler(recorder) }) { _, tcpPort, wsPort in
                let browserID = try WebSocketTestClient.open(port: wsPort).join("lobby")
                let tcpID = try RawClient(port: tcpPort).join("lobby")
                #expect(recorder.transports.withLock { $0 } == [browserID: .webSocket, tcpID: .tcp])
            }
            try await withWebSocketServer(configure: { $0.handler(TransportRecorder(refuseWebSocket: true)) }) { handle, _, wsPort in
                let client = try WebSocketTestClient(port: wsPort)
                try client.sendRaw(Array(WebSocketTestClient.upgradeRequest().utf8))
                #expect(try client.readHTTPAnswer().status == 403)
                #expect(try client.waitForEndOfStream())
                try await eventually { handle.clientCount == 0 }
            }
        }

        @Test func plainRequestsAreAnsweredOnTheWebSocketPort() async throws {
            try await withWebSocketServer { handle, _, wsPort in
                let page = try WebSocketTestClient(port: wsPort)
                try page.sendRaw(Array("GET / HTTP/1.1\r\nHost: x\r\n\r\n".utf8))
                let answer = try page.readHTTPAnswer()
                #expect(answer.status == 200)
                #expect(answer.header("Content-Type") == "text/html; charset=utf-8")
                #expect(answer.body == Array("<h1>demo</h1>".utf8))
                #expect(try page.waitForEndOfStream())

                let missing = try WebSocketTestClient(port: wsPort)
                try missing.sendRaw(Array("GET /nothing HTTP/1.1\r\nHost: x\r\n\r\n".utf8))
                #expect(try missing.readHTTPAnswer().status == 404)

                let oldVersion = try WebSocketTestClient(port: wsPort)
                try oldVersion.sendRaw(Array(WebSocketTestClient.upgradeRequest().replacingOccurrences(of: "Version: 13", with: "Version: 7").utf8))
                let refused = try oldVersion.readHTTPAnswer()
                #expect(refused.status == 426)
                #expect(refused.header("Sec-WebSocket-Version") == "13")
                #expect(try oldVersion.waitForEndOfStream())

                let garbage = try WebSocketTestClient(port: wsPort)
                try garbage.sendRaw(Array("\u{16}\u{03}\u{01} not http at all\r\n\r\n".utf8))
                #expect(try garbage.readHTTPAnswer().status == 400)
                try await eventually { handle.clientCount == 0 }
            }
        }

        @Test func aTrickledHandshakeStillOpens() async throws {
            try await withWebSocketServer { _, _, wsPort in
                let client = try WebSocketTestClient(port: wsPort)
                for byte in Array(WebSocketTestClient.upgradeRequest().utf8) { try client.sendRaw([byte]) }
                #expect(try client.readHTTPAnswer().status == 101)
                // The first frame trickled too.
                for byte in WebSocketFrame.clientFrame(opcode: .binary, payload: Array(ClientWire.joinRoom("lobby").encodedFrame().dropFirst(4)), mask: 0x0102_0304) {
                    try client.sendRaw([byte])
                }
                guard case .joined = try client.receive() else { throw RawClient.Failure.timedOut("Joined") }
            }
        }

        @Test func handshakesThatNeverFinishAreClosedAtTheDeadline() async throws {
            try await withWebSocketServer(webSocket: { $0.handshakeTimeout = .milliseconds(300) }) { handle, _, wsPort in
                let silent = try WebSocketTestClient(port: wsPort)
                let partial = try WebSocketTestClient(port: wsPort)
                try partial.sendRaw(Array("GET / HTTP/1.1\r\nHost: x\r\n".utf8))
                let started = ContinuousClock.now
                #expect(try silent.waitForEndOfStream(timeout: .seconds(5)))
                #expect(try partial.waitForEndOfStream(timeout: .seconds(5)))
                #expect(ContinuousClock.now - started < .seconds(3))
                try await eventually { handle.clientCount == 0 }
                #expect(handle.workerStatistics.reduce(WorkerStatistics(), +)[.webSocketHandshakesRefused] >= 2)
            }
        }

        @Test func aRequestHeadOverTheCapGets431() async throws {
            try await withWebSocketServer { handle, _, wsPort in
                let client = try WebSocketTestClient(port: wsPort)
                var request = Array("GET / HTTP/1.1\r\nHost: x\r\nX-Padding: ".utf8)
                request += Array(repeating: UInt8(ascii: "a"), count: 1 << 20)
                request += Array("\r\n\r\n".utf8)
                try client.sendRaw(request)
                #expect(try client.readHTTPAnswer().status == 431)
                #expect(try client.waitForEndOfStream())
                try await eventually { handle.clientCount == 0 }
            }
        }

        @Test func pingsAreAnsweredAndACloseIsEchoedThenTheServerCloses() async throws {
            let handler = RecordingHandler()
            try await withWebSocketServer(configure: { $0.handler(handler) }) { _, _, wsPort in
                let client = try WebSocketTestClient.open(port: wsPort)
                let clientID = try client.join("lobby")
                try client.sendFrame(opcode: .ping, Array("are you there".utf8))
                #expect(try client.receiveFrame() == .init(fin: true, opcode: 0xA, payload: Array("are you there".utf8)))
                try client.sendFrame(opcode: .pong, [1])  // unsolicited: ignored
                try client.sendFrame(opcode: .close, [0x0F, 0xA0] + Array("bye".utf8))  // 4000
                let close = try client.receiveClose()
                #expect(close.code == 4000)
                #expect(try client.waitForEndOfStream())
                #expect(await handler.log.first { $0 == .disconnect(clientID, .connectionClosed) } != nil)
            }
        }

        @Test func relayKeepaliveAppliesToWebSocketClients() async throws {
            let handler = RecordingHandler()
            try await withWebSocketServer(configure: { $0.handler(handler).pingInterval(.milliseconds(200)) }) { _, _, wsPort in
                let client = try WebSocketTestClient.open(port: wsPort)
                let clientID = try client.join("lobby")
                #expect(try client.receive(answeringPings: false) == .ping)  // as a binary message
                let close = try client.receiveClose()
                #expect(close.code == 1001)
                #expect(close.reason == "ping timeout")
                #expect(await handler.log.first { $0 == .disconnect(clientID, .pingTimeout) } != nil)
            }
        }

        @Test func badFramesCloseOnlyTheirConnectionWithTheRightCode() async throws {
            let handler = RecordingHandler()
            try await withWebSocketServer(configure: { $0.handler(handler).maxPayload(1024) }) { handle, tcpPort, wsPort in
                let bystander = try RawClient(port: tcpPort)
                _ = try bystander.join("lobby")
                func attack(_ expectedCode: UInt16, _ send: (WebSocketTestClient) throws -> Void) async throws {
                    let attacker = try WebSocketTestClient.open(port: wsPort)
                    let attackerID = try attacker.join("lobby")
                    #expect(try bystander.receive() == .playerJoined(clientID: attackerID))
                    try send(attacker)
                    #expect(try attacker.receiveClose().code == expectedCode)
                    #expect(try attacker.waitForEndOfStream())
                    #expect(try bystander.receive() == .playerLeft(clientID: attackerID))
                    try bystander.send(.echoTest([7]))
                    #expect(try bystander.receive() == .echoTest([7]))
                }
                try await attack(1002) { client in
                    var frame = WebSocketFrame.clientFrame(opcode: .binary, payload: [4, 0, 0, 0], mask: 1)
                    frame[1] &= 0x7F  // unmasked
                    try client.sendRaw(Array(frame[0..<2]) + Array(frame[6...]))
                }
                try await attack(1003) { try $0.sendFrame(opcode: .text, Array("hello".utf8)) }
                try await attack(1009) { try $0.sendRaw([0x82, 0xFF, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 1, 2, 3, 4]) }
                try await attack(1002) { try $0.sendRaw([0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4]) }  // 2^63
                try await attack(1002) { try $0.sendFrame(opcode: .ping, Array(repeating: 0, count: 126)) }
                try await attack(1002) { try $0.sendFrame(opcode: .ping, [1], fin: false) }
                try await attack(1002) { try $0.sendRaw([0xC2, 0x80, 0, 0, 0, 0]) }  // RSV1 without permessage-deflate
                try await attack(1002) { try $0.sendRaw([0x83, 0x80, 0, 0, 0, 0]) }  // reserved opcode
                try await attack(1002) { client in
                    try client.sendFrame(opcode: .binary, [4, 0], fin: false)
                    try client.sendFrame(opcode: .binary, [0, 0])  // a new message inside the first
                }
                try await attack(1002) { try $0.sendFrame(opcode: .close, [0x03, 0xED]) }  // 1005 may not be sent
                try await attack(1002) { try $0.sendFrame(opcode: .binary, [9, 0, 0, 0]) }  // not a relay request
                #expect(handle.clientCount == 1)
                #expect(await handler.log.first { if case .disconnect(_, .payloadTooLarge) = $0 { return true } else { return false } } != nil)
            }
        }

        @Test func fragmentedMessagesAreRelayedWhole() async throws {
            try await withWebSocketServer { _, tcpPort, wsPort in
                let tcp = try RawClient(port: tcpPort)
                _ = try tcp.join("lobby")
                let browser = try WebSocketTestClient.open(port: wsPort)
                let browserID = try browser.join("lobby")
                _ = try tcp.receive()  // PlayerJoined
                let payload = Array(ClientWire.broadcast(Array(0..<200)).encodedFrame().dropFirst(4))
                try browser.sendFrame(opcode: .binary, Array(payload[0..<10]), fin: false)
                try browser.sendFrame(opcode: .ping, [])
                try browser.sendFrame(opcode: .continuation, Array(payload[10..<100]), fin: false)
                try browser.sendFrame(opcode: .continuation, Array(payload[100...]))
                #expect(try tcp.receive() == .broadcast(senderID: browserID, data: Array(0..<200)))
            }
        }

        @Test func maxConnectionsPerIPCountsWebSocketsFromTheirAccept() async throws {
            try await withWebSocketServer(configure: { $0.maxConnectionsPerIP(1) }) { handle, tcpPort, wsPort in
                let first = try WebSocketTestClient(port: wsPort)  // not even upgraded yet
                // Accepted (and counted) before the next connection: the two listeners are on
                // different workers, so without this wait either could be accepted first.
                try await eventually { handle.clientCount == 1 }
                let second = try RawClient(port: tcpPort)
                second.expectClosedWithoutAFrame()
                try first.sendRaw(Array(WebSocketTestClient.upgradeRequest().utf8))
                #expect(try first.readHTTPAnswer().status == 101)
                #expect(handle.clientCount == 1)
            }
        }

        @Test func shutdownSendsGoingAway() async throws {
            var settings = WebSocketConfiguration(bindAddress: "127.0.0.1:0")
            settings.resources = [:]
            let handle = try await ShardedServer.builder().bind("127.0.0.1:0").workers(2).webSocket(settings).build().run()
            try handle.createRoom("lobby")
            let client = try WebSocketTestClient.open(port: handle.webSocketAddress!.port)
            _ = try client.join("lobby")
            async let stopped: Void = handle.shutdown()
            let close = try client.receiveClose()
            #expect(close.code == 1001)
            client.close()
            await stopped
        }
    }
}

extension WebSocketTestClient {
    func close() {
        shutdown(fd, Int32(SHUT_RDWR))
    }
}

/// Whether this test binary was built with ThreadSanitizer (its runtime is linked in).
let isRunningUnderThreadSanitizer = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "__tsan_init") != nil
let isRunningUnderAddressSanitizer = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "__asan_init") != nil

/// Resident set size of this process, in bytes.
private func residentBytes() -> Int {
    guard let file = fopen("/proc/self/statm", "r") else { return 0 }
    defer { fclose(file) }
    var size = 0
    var resident = 0
    guard fscanf_pair(file, &size, &resident) else { return 0 }
    return resident * Int(sysconf(Int32(_SC_PAGESIZE)))
}

private func fscanf_pair(_ file: UnsafeMutablePointer<FILE>, _ first: inout Int, _ second: inout Int) -> Bool {
    var line = [CChar](repeating: 0, count: 256)
    guard fgets(&line, 255, file) != nil else { return false }
    let fields = String(decoding: line.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self).split(separator: " ")
    guard fields.count >= 2, let a = Int(fields[0]), let b = Int(fields[1]) else { return false }
    first = a
    second = b
    return true
}

extension Relay.WebSocketRelayTests {
    /// 10,000 handshakes, each closed by the client right after the 101, then a flood of 500
    /// half-done handshakes left to the deadline: every descriptor comes back, memory stays
    /// flat, and a member in the room is served throughout.
    @Test func handshakeChurnAndHalfDoneFloodsLeakNothing() async throws {
        try await withWebSocketServer(workers: 2, webSocket: { $0.handshakeTimeout = .milliseconds(500) }) { handle, tcpPort, wsPort in
            let bystander = try RawClient(port: tcpPort)
            _ = try bystander.join("lobby")
            let descriptorsBefore = openDescriptors().count
            // Warm up allocator and pools before measuring memory.
            for _ in 0..<200 { _ = try WebSocketTestClient.open(port: wsPort) }
            try await eventually { handle.clientCount == 1 }
            let residentBefore = residentBytes()
            for round in 0..<10_000 {
                let client = try WebSocketTestClient.open(port: wsPort)
                if round % 1000 == 0 {
                    try bystander.send(.echoTest([UInt8(round / 1000)]))
                    #expect(try bystander.receive() == .echoTest([UInt8(round / 1000)]))
                }
                _ = client
            }
            var flood: [WebSocketTestClient] = []
            for _ in 0..<500 {
                let client = try WebSocketTestClient(port: wsPort)
                try client.sendRaw(Array("GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n".utf8))
                flood.append(client)
            }
            for client in flood { #expect(try client.waitForEndOfStream(timeout: .seconds(10))) }
            flood.removeAll()
            try await eventually { handle.clientCount == 1 }
            // The server's lingering sockets close once the clients' FINs arrive.
            try await eventually { openDescriptors().count <= descriptorsBefore }
            // ThreadSanitizer's shadow memory and allocator caches grow with every new address
            // it sees, and AddressSanitizer keeps freed memory in quarantine (256 MiB) instead of
            // reusing it, so RSS measures allocation volume there, not leaks (its LeakSanitizer
            // checks those). The RSS bound is checked without either; descriptors always.
            if !isRunningUnderThreadSanitizer && !isRunningUnderAddressSanitizer {
                let grown = residentBytes() - residentBefore
                #expect(grown < 16 << 20, "RSS grew by \(grown) bytes")
            }
            try bystander.send(.echoTest([42]))
            #expect(try bystander.receive() == .echoTest([42]))
        }
    }
}
