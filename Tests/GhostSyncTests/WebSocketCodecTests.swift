import Glibc
import Testing
@testable import GhostSync

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The WebSocket codec without sockets: accept key, UTF-8, the frame decoder's rules and
/// splits, the handshake's decisions, and the outbox's WebSocket wire form.
@Suite struct WebSocketCodecTests {
    // MARK: Handshake

    @Test func acceptKeyMatchesTheRFCExample() {
        #expect(WebSocketHandshake.acceptKey(for: "dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
    }

    private func decide(_ request: String, configure: (inout WebSocketConfiguration) -> Void = { _ in }) -> HandshakeDecision? {
        var configuration = WebSocketConfiguration(bindAddress: "127.0.0.1:0")
        configuration.resources = ["/": HTTPResource(contentType: "text/html", body: Array("<p>hi</p>".utf8))]
        configure(&configuration)
        let bytes = Array(request.utf8)
        guard let head = bytes.withUnsafeBytes({ HTTPRequestHead($0) }) else { return nil }
        return WebSocketHandshake.decide(head, configuration: configuration)
    }

    private func status(_ decision: HandshakeDecision?) -> Int? {
        switch decision {
        case .upgrade: return 101
        case .respond(_, let status, _): return status
        case nil: return nil
        }
    }

    private func responseText(_ decision: HandshakeDecision?) -> String {
        switch decision {
        case .upgrade(let response, _, _), .respond(let response, _, _): return String(decoding: response, as: UTF8.self)
        case nil: return ""
        }
    }

    @Test func upgradeSelectsTheSubprotocolAndDeclinesExtensions() {
        let decision = decide(WebSocketTestClient.upgradeRequest(protocols: ["chat", "ghost-sync.v1"]))
        guard case .upgrade(let response, let subprotocol, _) = decision else {
            Issue.record("expected an upgrade, got \(String(describing: decision))")
            return
        }
        #expect(subprotocol == "ghost-sync.v1")
        let text = String(decoding: response, as: UTF8.self)
        #expect(text.hasPrefix("HTTP/1.1 101 Switching Protocols\r\n"))
        #expect(text.contains("\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"))
        #expect(text.contains("\r\nSec-WebSocket-Protocol: ghost-sync.v1\r\n"))
        #expect(!text.contains("Extensions"))
        #expect(text.hasSuffix("\r\n\r\n"))
    }

    @Test func upgradeWithoutSubprotocolsSelectsNone() {
        let text = responseText(decide(WebSocketTestClient.upgradeRequest(protocols: nil)))
        #expect(text.hasPrefix("HTTP/1.1 101"))
        #expect(!text.contains("Sec-WebSocket-Protocol"))
    }

    @Test func refusals() {
        let valid = WebSocketTestClient.upgradeRequest()
        // Another version: 426 naming the one spoken.
        let version = decide(valid.replacingOccurrences(of: "Sec-WebSocket-Version: 13", with: "Sec-WebSocket-Version: 8"))
        #expect(status(version) == 426)
        #expect(responseText(version).contains("\r\nSec-WebSocket-Version: 13\r\n"))
        // Malformed upgrades: 400.
        #expect(status(decide(valid.replacingOccurrences(of: "Sec-WebSocket-Version: 13\r\n", with: ""))) == 400)
        #expect(status(decide(valid.replacingOccurrences(of: "Host: 127.0.0.1\r\n", with: ""))) == 400)
        #expect(status(decide(valid.replacingOccurrences(of: "Connection: keep-alive, Upgrade", with: "Connection: keep-alive"))) == 400)
        #expect(status(decide(valid.replacingOccurrences(of: "dGhlIHNhbXBsZSBub25jZQ==", with: "c2hvcnQ="))) == 400)
        #expect(status(decide(valid.replacingOccurrences(of: "dGhlIHNhbXBsZSBub25jZQ==", with: "!!!"))) == 400)
        #expect(status(decide(valid.replacingOccurrences(of: "HTTP/1.1", with: "HTTP/1.0"))) == 400)
        #expect(status(decide(valid.replacingOccurrences(of: "ghost-sync.v1", with: "chat"))) == 400)
        #expect(status(decide(valid.replacingOccurrences(of: "GET", with: "POST"))) == 405)
        // Origin allow-list: 403 for another origin and for none.
        let allowList: (inout WebSocketConfiguration) -> Void = { $0.allowedOrigins = ["https://game.example"] }
        #expect(status(decide(valid.replacingOccurrences(of: "Host:", with: "Origin: https://game.example\r\nHost:"), configure: allowList)) == 101)
        #expect(status(decide(valid.replacingOccurrences(of: "Host:", with: "Origin: https://evil.example\r\nHost:"), configure: allowList)) == 403)
        #expect(status(decide(valid, configure: allowList)) == 403)
        // Not HTTP at all.
        #expect(decide("GET / HTTP/1.1\r\nHost x\r\n\r\n") == nil)
        #expect(decide("GET / HTTP/1.1\r\n Folded: yes\r\n\r\n") == nil)
        #expect(decide("GET / HTTP/1.1\nHost: x\r\n\r\n") == nil)
        #expect(decide("GET /\r\n\r\n") == nil)
    }

    @Test func plainGetsServeResources() {
        let page = decide("GET /?room=lobby HTTP/1.1\r\nHost: x\r\n\r\n")
        #expect(status(page) == 200)
        #expect(responseText(page).hasSuffix("\r\n\r\n<p>hi</p>"))
        #expect(responseText(page).contains("Content-Length: 9\r\n"))
        #expect(status(decide("GET /missing HTTP/1.1\r\nHost: x\r\n\r\n")) == 404)
    }

    // MARK: UTF-8

    @Test func utf8Validation() {
        func valid(_ bytes: [UInt8]) -> Bool { bytes.withUnsafeBytes { UTF8Validator.isValid($0) } }
        #expect(valid(Array("κόσμε ✓ 𝄞".utf8)))
        #expect(!valid([0xC0, 0xAF]))  // overlong
        #expect(!valid([0xED, 0xA0, 0x80]))  // surrogate
        #expect(!valid([0xF4, 0x90, 0x80, 0x80]))  // above U+10FFFF
        #expect(!valid([0xE2, 0x82]))  // truncated
        #expect(!valid([0xFF]))
        // Across fragments: a scalar split between two consumes.
        var validator = UTF8Validator()
        let euro: [UInt8] = [0xE2, 0x82, 0xAC]
        #expect(euro[0..<1].withUnsafeBytes { validator.consume($0) })
        #expect(!validator.isComplete)
        #expect(euro[1...].withUnsafeBytes { validator.consume($0) })
        #expect(validator.isComplete)
    }

    // MARK: Frames

    private enum Seen: Equatable {
        case message(UInt8, [UInt8])
        case ping([UInt8])
        case pong
        case close(UInt16?, String)
    }

    /// Feeds `chunks` one read at a time; returns the events and the error, if any.
    private func run(_ chunks: [[UInt8]], maxMessage: Int = 1024, text: Bool = false) -> (events: [Seen], error: WebSocketError?, decoder: WebSocketFrameDecoder) {
        var decoder = WebSocketFrameDecoder(maxMessageSize: maxMessage, acceptsText: text)
        var events: [Seen] = []
        for chunk in chunks {
            var bytes = chunk
            let result = bytes.withUnsafeMutableBytes { raw in
                Result { () throws(WebSocketError) -> FrameAction in
                    try decoder.feed(raw) { event in
                        switch event {
                        case .message(let opcode, let payload): events.append(.message(opcode.rawValue, Array(payload)))
                        case .ping(let payload): events.append(.ping(Array(payload)))
                        case .pong: events.append(.pong)
                        case .close(let code, let reason): events.append(.close(code, String(decoding: reason, as: UTF8.self)))
                        }
                        return .proceed
                    }
                }
            }
            if case .failure(let error) = result { return (events, error, decoder) }
        }
        return (events, nil, decoder)
    }

    private func frame(_ opcode: WebSocketOpcode, _ payload: [UInt8], fin: Bool = true, mask: UInt32 = 0xA1B2_C3D4) -> [UInt8] {
        WebSocketFrame.clientFrame(opcode: opcode, payload: payload, fin: fin, mask: mask)
    }

    @Test func everySplitOfAStreamDecodesTheSame() {
        let payloads: [[UInt8]] = [[], Array(0..<125), Array(repeating: 7, count: 126), Array((0..<70_000).map { UInt8(truncatingIfNeeded: $0) })]
        var stream: [UInt8] = []
        for (index, payload) in payloads.enumerated() { stream += frame(.binary, payload, mask: UInt32(index) &* 0x9E37_79B9) }
        stream += frame(.ping, [1, 2, 3])
        let expected = payloads.map { Seen.message(2, $0) } + [.ping([1, 2, 3])]
        #expect(run([stream], maxMessage: 100_000).events == expected)
        // Two reads, split at every offset of the first 300 bytes and a few later ones.
        for split in Array(0...300) + [stream.count - 5, stream.count - 1] {
            let result = run([Array(stream[..<split]), Array(stream[split...])], maxMessage: 100_000)
            #expect(result.events == expected, "split at \(split)")
            #expect(result.error == nil)
        }
        // Byte by byte (a trickling client).
        let small = frame(.binary, Array(0..<200)) + frame(.pong, [9])
        #expect(run(small.map { [$0] }).events == [.message(2, Array(0..<200)), .pong])
    }

    @Test func unmaskingMatchesABytewiseXorAtEveryPhase() {
        let original = (0..<37).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        let keyBytes: [UInt8] = [0x12, 0x34, 0x56, 0x78]
        let key = keyBytes.withUnsafeBytes { $0.loadUnaligned(as: UInt32.self) }
        for phase in 0..<4 {
            var bytes = original
            bytes.withUnsafeMutableBytes { WebSocketFrame.unmask($0, key: key, phase: phase) }
            #expect(bytes == original.enumerated().map { $1 ^ keyBytes[($0 + phase) & 3] })
        }
    }

    @Test func fragmentsAreReassembledAroundControlFrames() {
        let stream = frame(.binary, [1, 2], fin: false) + frame(.ping, [7]) + frame(.continuation, [3], fin: false)
            + frame(.continuation, [4, 5])
        #expect(run([stream]).events == [.ping([7]), .message(2, [1, 2, 3, 4, 5])])
    }

    @Test func protocolErrorsCloseWith1002() {
        func code(_ bytes: [UInt8], text: Bool = false) -> UInt16? { run([bytes], text: text).error?.code }
        var unmasked = frame(.binary, [1, 2, 3])
        unmasked[1] &= 0x7F
        #expect(code(unmasked) == 1002)
        var reservedBit = frame(.binary, [1])
        reservedBit[0] |= 0x40
        #expect(code(reservedBit) == 1002)
        #expect(code([0x83, 0x80, 0, 0, 0, 0]) == 1002)  // reserved data opcode
        #expect(code([0x8B, 0x80, 0, 0, 0, 0]) == 1002)  // reserved control opcode
        #expect(code(frame(.ping, [1], fin: false)) == 1002)  // fragmented control frame
        #expect(code(frame(.ping, Array(repeating: 0, count: 126))) == 1002)  // oversized control frame
        #expect(code(frame(.continuation, [1])) == 1002)  // nothing to continue
        #expect(code(frame(.binary, [1], fin: false) + frame(.binary, [2])) == 1002)  // interleaved data frames
        #expect(code([0x82, 0x80 | 126, 0x00, 0x05, 0, 0, 0, 0]) == 1002)  // 16-bit length that fits in 7 bits
        #expect(code([0x82, 0x80 | 127, 0, 0, 0, 0, 0, 0, 0x01, 0x00, 0, 0, 0, 0]) == 1002)  // 64-bit length that fits in 16
        #expect(code(frame(.close, [0x03])) == 1002)  // 1-byte close payload
        for invalid: UInt16 in [0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000] {
            #expect(code(frame(.close, [UInt8(invalid >> 8), UInt8(invalid & 0xFF)])) == 1002, "close code \(invalid)")
        }
        #expect(code(frame(.close, [0x03, 0xE8, 0xC0, 0xAF])) == 1007)  // reason not UTF-8
        #expect(code(frame(.text, Array("hi".utf8))) == 1003)  // the relay takes binary only
        #expect(code(frame(.text, [0xC0, 0xAF]), text: true) == 1007)
        // Invalid UTF-8 in the first fragment fails before the message is whole.
        #expect(code(frame(.text, [0x61, 0xFF], fin: false), text: true) == 1007)
    }

    @Test func validCloseCodesAreAccepted() {
        for valid: UInt16 in [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 3000, 3999, 4000, 4999] {
            let result = run([frame(.close, [UInt8(valid >> 8), UInt8(valid & 0xFF)] + Array("bye".utf8))])
            #expect(result.events == [.close(valid, "bye")], "close code \(valid)")
        }
        #expect(run([frame(.close, [])]).events == [.close(nil, "")])
    }

    @Test func oversizedMessagesAreRefusedFromTheHeaderAlone() {
        // A claimed 2^63 − 1 bytes: refused (1009) with only the 14 header bytes in, nothing stored.
        let huge: [UInt8] = [0x82, 0x80 | 127, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 1, 2, 3, 4]
        let result = run([huge])
        #expect(result.error?.code == 1009)
        #expect(result.decoder.bufferedBytes == 0)
        // 2^63 itself: the length's top bit is a protocol error.
        #expect(run([[0x82, 0x80 | 127, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4]]).error?.code == 1002)
        // Over the cap by one, as one frame and as fragments adding up past it.
        #expect(run([Array(frame(.binary, Array(repeating: 1, count: 1025)).prefix(8))]).error?.code == 1009)
        let fragments = frame(.binary, Array(repeating: 1, count: 1000), fin: false) + Array(frame(.continuation, Array(repeating: 1, count: 25)).prefix(6))
        #expect(run([fragments]).error?.code == 1009)
        // Exactly at the cap: fine.
        #expect(run([frame(.binary, Array(repeating: 1, count: 1024))]).events.count == 1)
    }

    @Test func pauseKeepsTheRestForResume() throws {
        var decoder = WebSocketFrameDecoder(maxMessageSize: 1024)
        var stream = frame(.binary, [1]) + frame(.binary, [2]) + Array(frame(.binary, [3, 4]).prefix(7))
        var seen: [[UInt8]] = []
        let action = try stream.withUnsafeMutableBytes { raw in
            Result { () throws(WebSocketError) -> FrameAction in
                try decoder.feed(raw) { event in
                    guard case .message(_, let payload) = event else { return .proceed }
                    seen.append(Array(payload))
                    return .pause
                }
            }
        }.get()
        #expect(action == .pause)
        #expect(seen == [[1]])
        #expect(decoder.hasPendingBytes)
        _ = try decoder.resume { event in
            if case .message(_, let payload) = event { seen.append(Array(payload)) }
            return .proceed
        }
        #expect(seen == [[1], [2]])
        var rest = Array(frame(.binary, [3, 4]).dropFirst(7))
        _ = try rest.withUnsafeMutableBytes { raw in
            Result { () throws(WebSocketError) -> FrameAction in
                try decoder.feed(raw) { event in
                    if case .message(_, let payload) = event { seen.append(Array(payload)) }
                    return .proceed
                }
            }
        }.get()
        #expect(seen == [[1], [2], [3, 4]])
    }

    // MARK: Outbox

    @Test func outboxWritesRelayFramesAsBinaryMessagesAtAnySplit() throws {
        let pool = FramePool()
        let small = SharedFrame.encoding(.playerJoined(clientID: UUID(uuid: (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15))), pool: pool)
        let large = SharedFrame.encoding(.error(String(repeating: "x", count: 300)), pool: pool)
        let verbatim = [UInt8]([0x8A, 0x01, 0x42]).withUnsafeBytes { SharedFrame.verbatim($0, pool: pool) }
        let frames = [small, large, verbatim]
        func wire(_ frame: SharedFrame) -> [UInt8] {
            let bytes = Array(UnsafeRawBufferPointer(start: frame.bytes, count: frame.count))
            return frame.isVerbatim ? bytes : WebSocketFrame.serverFrame(opcode: .binary, payload: bytes.dropFirst(4))
        }
        let expected = frames.flatMap(wire)
        let expectedCount = 2 + 20 + 4 + 312 + 3  // PlayerJoined; Error of 300 bytes (tag, length, text); the verbatim Pong
        #expect(expected.count == expectedCount)
        let vectors = UnsafeMutablePointer<iovec>.allocate(capacity: 16)
        let headers = UnsafeMutableRawPointer.allocate(byteCount: 16 * Outbox.headerStride, alignment: 16)
        defer {
            vectors.deallocate()
            headers.deallocate()
        }
        // Written in two parts, split at every offset.
        for split in 1..<expected.count {
            var outbox = Outbox()
            for frame in frames { outbox.append(frame) }
            var written: [UInt8] = []
            for step in [split, expected.count - split] {
                let gathered = outbox.gatherWebSocket(into: vectors, headers: headers, limit: 16)
                var all: [UInt8] = []
                for index in 0..<gathered.vectors {
                    all += UnsafeRawBufferPointer(start: vectors[index].iov_base, count: vectors[index].iov_len)
                }
                #expect(all.count == gathered.bytes)
                written += all.prefix(step)
                outbox.consumeWebSocket(step)
            }
            #expect(written == expected, "split at \(split)")
            let drained = outbox.isEmpty
            #expect(drained)
        }
        // A handoff's copy of what is unsent is in the same wire form.
        var outbox = Outbox()
        for frame in frames { outbox.append(frame) }
        outbox.consumeWebSocket(5)
        #expect(outbox.takeUnsentBytes(webSocket: true) == Array(expected.dropFirst(5)))
        for frame in frames { frame.release() }
    }

    // MARK: docs/protocol.md

    private func hex(_ text: String) -> [UInt8] {
        let digits = Array(text.filter { !$0.isWhitespace })
        return stride(from: 0, to: digits.count, by: 2).map { UInt8(String(digits[$0...$0 + 1]), radix: 16)! }
    }

    @Test func theProtocolDocumentsVectorsHold() throws {
        let clientJoin = run([hex("8291 37fa213d 37fa213d32fa213d37fa213d5b95435f4e")])
        #expect(clientJoin.events == [.message(2, Array(ClientWire.joinRoom("lobby").encodedFrame().dropFirst(4)))])
        #expect(run([hex("8284 37fa213d 35fa213d")]).events == [.message(2, [2, 0, 0, 0])])
        #expect(WebSocketFrame.clientFrame(opcode: .binary, payload: [2, 0, 0, 0], mask: 0x37FA_213D) == hex("8284 37fa213d 35fa213d"))

        let uuid = UUID(uuidString: "00112233-4455-6677-8899-aabbccddeeff")!
        func onTheWire(_ message: ServerWire) -> [UInt8] {
            let frame = SharedFrame.encoding(message)
            defer { frame.release() }
            var outbox = Outbox()
            outbox.append(frame)
            return outbox.takeUnsentBytes(webSocket: true)
        }
        #expect(onTheWire(.joined(clientID: uuid, roomID: "lobby")) == hex("8221 00000000 00112233445566778899aabbccddeeff 0500000000000000 6c6f626279"))
        #expect(onTheWire(.ping) == hex("8204 03000000"))
        let broadcast = onTheWire(.broadcast(senderID: uuid, data: Array(repeating: 0, count: 200)))
        #expect(Array(broadcast.prefix(8)) == hex("827e00e4 06000000"))
        #expect(broadcast.count == 4 + 228)
    }
}
