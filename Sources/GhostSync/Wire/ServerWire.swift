#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// A message from the relay to a client (`ServerWire` of the original; tags are declaration order).
public enum ServerWire: Equatable, Sendable {
    /// Tag 0: the join succeeded; `clientID` is this connection's ID.
    case joined(clientID: UUID, roomID: String)
    /// Tag 1: another client joined the room.
    case playerJoined(clientID: UUID)
    /// Tag 2: another client left the room or disconnected.
    case playerLeft(clientID: UUID)
    /// Tag 3: keepalive; the client must answer `Pong`.
    case ping
    /// Tag 4: the answer to a client `Ping`.
    case pong
    /// Tag 5: a request failed; the text says why.
    case error(String)
    /// Tag 6: bytes another member broadcast.
    case broadcast(senderID: UUID, data: [UInt8])
    /// Tag 7 (newest upstream): the client's own `EchoTest` bytes, sent back.
    case echoTest([UInt8])

    /// The payload size, without the 4-byte frame prefix.
    public var payloadSize: Int {
        switch self {
        case .joined(_, let roomID): return WireSize.tag + WireSize.uuid + WireSize.bytes(roomID.utf8.count)
        case .playerJoined, .playerLeft: return WireSize.tag + WireSize.uuid
        case .ping, .pong: return WireSize.tag
        case .error(let message): return WireSize.tag + WireSize.bytes(message.utf8.count)
        case .broadcast(_, let data): return Self.broadcastPayloadSize(dataCount: data.count)
        case .echoTest(let data): return WireSize.tag + WireSize.bytes(data.count)
        }
    }

    /// The whole frame: length prefix and payload.
    public func encodedFrame() -> [UInt8] {
        [UInt8](unsafeUninitializedCapacity: WireSize.framePrefix + payloadSize) { buffer, count in
            var writer = WireWriter(UnsafeMutableRawBufferPointer(buffer))
            writeFrame(into: &writer)
            count = writer.position
        }
    }

    /// The payload only (what the protocol's test vectors show).
    public func encodedPayload() -> [UInt8] {
        Array(encodedFrame().dropFirst(WireSize.framePrefix))
    }

    func writeFrame(into writer: inout WireWriter) {
        writer.writeFrameLength(payloadSize)
        switch self {
        case .joined(let clientID, let roomID):
            writer.writeUInt32(0)
            writer.writeUUID(clientID)
            writer.writeString(roomID)
        case .playerJoined(let clientID):
            writer.writeUInt32(1)
            writer.writeUUID(clientID)
        case .playerLeft(let clientID):
            writer.writeUInt32(2)
            writer.writeUUID(clientID)
        case .ping: writer.writeUInt32(3)
        case .pong: writer.writeUInt32(4)
        case .error(let message):
            writer.writeUInt32(5)
            writer.writeString(message)
        case .broadcast(let senderID, let data):
            data.withUnsafeBytes { Self.writeBroadcastBody(senderID: senderID, data: $0, into: &writer) }
        case .echoTest(let data):
            data.withUnsafeBytes { Self.writeEchoBody(data: $0, into: &writer) }
        }
    }

    /// Decodes one payload (without the length prefix); it must be consumed exactly.
    public init(payload: [UInt8]) throws(WireError) {
        let result = payload.withUnsafeBytes { raw in
            Result { () throws(WireError) -> ServerWire in try ServerWire(payload: raw) }
        }
        self = try result.get()
    }

    init(payload: UnsafeRawBufferPointer) throws(WireError) {
        if payload.isEmpty { throw .emptyPayload }
        var reader = WireReader(payload)
        switch try reader.readUInt32() {
        case 0:
            let clientID = try reader.readUUID()
            self = .joined(clientID: clientID, roomID: try reader.readString())
        case 1: self = .playerJoined(clientID: try reader.readUUID())
        case 2: self = .playerLeft(clientID: try reader.readUUID())
        case 3: self = .ping
        case 4: self = .pong
        case 5: self = .error(try reader.readString())
        case 6:
            let senderID = try reader.readUUID()
            self = .broadcast(senderID: senderID, data: Array(try reader.readBytes()))
        case 7: self = .echoTest(Array(try reader.readBytes()))
        case let tag: throw .unknownTag(tag)
        }
        try reader.expectEnd()
    }
}

// The relay's hot path encodes broadcasts and echoes from borrowed bytes, straight into a frame
// buffer, without first building a `ServerWire` value (which would copy the data into an array).
extension ServerWire {
    package static func broadcastPayloadSize(dataCount: Int) -> Int {
        WireSize.tag + WireSize.uuid + WireSize.bytes(dataCount)
    }

    static func echoPayloadSize(dataCount: Int) -> Int {
        WireSize.tag + WireSize.bytes(dataCount)
    }

    /// Writes tag, sender and data (the caller wrote the length prefix).
    package static func writeBroadcastBody(senderID: UUID, data: UnsafeRawBufferPointer, into writer: inout WireWriter) {
        writer.writeUInt32(6)
        writer.writeUUID(senderID)
        writer.writeBytes(data)
    }

    static func writeEchoBody(data: UnsafeRawBufferPointer, into writer: inout WireWriter) {
        writer.writeUInt32(7)
        writer.writeBytes(data)
    }
}
