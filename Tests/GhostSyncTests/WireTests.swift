import Testing
@testable import GhostSync

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

private let vectorUUID = UUID(uuidString: "00112233-4455-6677-8899-AABBCCDDEEFF")!

private func bytes(_ hex: String) -> [UInt8] {
    let digits = Array(hex.filter { !$0.isWhitespace })
    return stride(from: 0, to: digits.count, by: 2).map { UInt8(String(digits[$0...$0 + 1]), radix: 16)! }
}

private func hex(_ bytes: [UInt8]) -> String {
    bytes.map { String($0, radix: 16).count == 1 ? "0" + String($0, radix: 16) : String($0, radix: 16) }.joined()
}

/// The test vectors of protocol.md, produced by the original Rust implementation's serializer.
@Suite struct WireVectors {
    static let clientVectors: [(ClientWire, String)] = [
        (.joinRoom("lobby"), "00000000 0500000000000000 6c6f626279"),
        (.leaveRoom, "01000000"),
        (.ping, "02000000"),
        (.pong, "03000000"),
        (.broadcast(Array("hi".utf8)), "04000000 0200000000000000 6869"),
        (.echoTest(Array("hi".utf8)), "05000000 0200000000000000 6869"),
    ]

    static let serverVectors: [(ServerWire, String)] = [
        (.joined(clientID: vectorUUID, roomID: "lobby"), "00000000 00112233445566778899aabbccddeeff 0500000000000000 6c6f626279"),
        (.playerJoined(clientID: vectorUUID), "01000000 00112233445566778899aabbccddeeff"),
        (.playerLeft(clientID: vectorUUID), "02000000 00112233445566778899aabbccddeeff"),
        (.ping, "03000000"),
        (.pong, "04000000"),
        (.error("room not found: x"), "05000000 1100000000000000 726f6f6d206e6f7420666f756e643a2078"),
        (.broadcast(senderID: vectorUUID, data: Array("hi".utf8)), "06000000 00112233445566778899aabbccddeeff 0200000000000000 6869"),
        (.echoTest(Array("hi".utf8)), "07000000 0200000000000000 6869"),
    ]

    @Test(arguments: 0..<clientVectors.count)
    func clientMessageEncodes(index: Int) {
        let (message, expected) = Self.clientVectors[index]
        #expect(hex(message.encodedPayload()) == hex(bytes(expected)))
    }

    @Test(arguments: 0..<clientVectors.count)
    func clientMessageDecodes(index: Int) throws {
        let (message, payload) = Self.clientVectors[index]
        #expect(try ClientWire(payload: bytes(payload)) == message)
    }

    @Test(arguments: 0..<serverVectors.count)
    func serverMessageEncodes(index: Int) {
        let (message, expected) = Self.serverVectors[index]
        #expect(hex(message.encodedPayload()) == hex(bytes(expected)))
    }

    @Test(arguments: 0..<serverVectors.count)
    func serverMessageDecodes(index: Int) throws {
        let (message, payload) = Self.serverVectors[index]
        #expect(try ServerWire(payload: bytes(payload)) == message)
    }

    @Test func wholeFrameExamples() {
        #expect(hex(ClientWire.joinRoom("lobby").encodedFrame()) == "00000011" + "00000000" + "0500000000000000" + "6c6f626279")
        #expect(hex(ClientWire.ping.encodedFrame()) == "0000000402000000")
    }

    @Test func payloadSizeMatchesEncoding() {
        for (message, _) in Self.clientVectors { #expect(message.encodedPayload().count == message.payloadSize) }
        for (message, _) in Self.serverVectors { #expect(message.encodedPayload().count == message.payloadSize) }
    }

    @Test func roomIDsAreUTF8Bytes() throws {
        let message = ClientWire.joinRoom("salle-é-🎮")
        #expect(try ClientWire(payload: message.encodedPayload()) == message)
        #expect(message.payloadSize == 4 + 8 + "salle-é-🎮".utf8.count)
    }
}

@Suite struct WireErrors {
    @Test func emptyPayloadHasNoTag() {
        #expect(throws: WireError.emptyPayload) { try ClientWire(payload: []) }
    }

    @Test func unknownTag() {
        #expect(throws: WireError.unknownTag(6)) { try ClientWire(payload: bytes("06000000")) }
        #expect(throws: WireError.unknownTag(8)) { try ServerWire(payload: bytes("08000000")) }
    }

    @Test func truncatedTagAndFields() {
        #expect(throws: WireError.truncated) { try ClientWire(payload: bytes("0000")) }
        #expect(throws: WireError.truncated) { try ClientWire(payload: bytes("00000000 0500000000000000 6c6f62")) }
        #expect(throws: WireError.truncated) { try ClientWire(payload: bytes("04000000 02000000")) }
        #expect(throws: WireError.truncated) { try ServerWire(payload: bytes("01000000 0011223344")) }
    }

    @Test func lengthRunningPastTheEnd() {
        #expect(throws: WireError.truncated) { try ClientWire(payload: bytes("04000000 ffffffffffffffff 6869")) }
    }

    @Test func trailingBytes() {
        #expect(throws: WireError.trailingBytes(1)) { try ClientWire(payload: bytes("02000000 00")) }
        #expect(throws: WireError.trailingBytes(2)) { try ClientWire(payload: bytes("04000000 0200000000000000 6869 6869")) }
    }

    @Test func invalidUTF8RoomID() {
        #expect(throws: WireError.invalidUTF8) { try ClientWire(payload: bytes("00000000 0200000000000000 c328")) }
    }
}

/// Issue 10, defect 2: the length prefix never wraps.
@Suite struct LengthPrefixLimits {
    @Test func maxPayloadIsCappedSoEveryServerFrameFits() async throws {
        #expect(ServerConfiguration.maxPayloadLimit == 4_294_967_279)
        // The largest server frame the limit allows: a relayed Broadcast of a client payload of
        // maxPayloadLimit bytes (its data is the payload less tag and length).
        let largestRelayed = ServerWire.broadcastPayloadSize(dataCount: ServerConfiguration.maxPayloadLimit - WireSize.tag - 8)
        #expect(largestRelayed == Int(UInt32.max))
        var atLimit = ServerConfiguration()
        atLimit.maxPayload = ServerConfiguration.maxPayloadLimit
        #expect(throws: Never.self) { _ = try atLimit.validated() }
        var overLimit = ServerConfiguration()
        overLimit.maxPayload = ServerConfiguration.maxPayloadLimit + 1
        #expect(throws: ServerError.self) { _ = try overLimit.validated() }
        await #expect(throws: ServerError.self) {
            _ = try await ShardedServer.builder().bind("127.0.0.1:0").maxPayload(Int(UInt32.max)).build().run()
        }
    }

    @Test func writerAcceptsTheLargestPrefix() {
        var bytes = [UInt8](repeating: 0, count: 4)
        bytes.withUnsafeMutableBytes { raw in
            var writer = WireWriter(raw)
            writer.writeFrameLength(Int(UInt32.max))
        }
        #expect(bytes == [0xFF, 0xFF, 0xFF, 0xFF])
    }

    @Test func writerTrapsInsteadOfWrapping() async {
        await #expect(processExitsWith: .failure) {
            var bytes = [UInt8](repeating: 0, count: 4)
            bytes.withUnsafeMutableBytes { raw in
                var writer = WireWriter(raw)
                writer.writeFrameLength(Int(UInt32.max) + 1)  // would have written 00 00 00 00
            }
        }
    }
}

@Suite struct ServerSenderVector {
    /// docs/protocol.md, "Beyond the original": a Broadcast from the server.
    @Test func broadcastFromTheServer() {
        let frame = ServerWire.broadcast(senderID: ServerHandle.serverID, data: [1, 2]).encodedFrame()
        let hex = frame.map { String($0, radix: 16).count == 1 ? "0" + String($0, radix: 16) : String($0, radix: 16) }.joined()
        #expect(hex == "0000001e" + "06000000" + String(repeating: "00", count: 16) + "0200000000000000" + "0102")
    }
}
