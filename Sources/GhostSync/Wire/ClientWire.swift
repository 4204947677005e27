/// A message from a client to the relay (`ClientWire` of the original; tags are declaration order).
public enum ClientWire: Equatable, Sendable {
    /// Tag 0: join (or switch to) a room.
    case joinRoom(String)
    /// Tag 1: leave the current room.
    case leaveRoom
    /// Tag 2: ask the server for a `Pong`.
    case ping
    /// Tag 3: answer a server `Ping`.
    case pong
    /// Tag 4: relay these bytes to every other member of the room.
    case broadcast([UInt8])
    /// Tag 5 (newest upstream): the server sends the bytes straight back.
    case echoTest([UInt8])

    /// The payload size, without the 4-byte frame prefix.
    public var payloadSize: Int {
        switch self {
        case .joinRoom(let roomID): return WireSize.tag + WireSize.bytes(roomID.utf8.count)
        case .leaveRoom, .ping, .pong: return WireSize.tag
        case .broadcast(let data), .echoTest(let data): return WireSize.tag + WireSize.bytes(data.count)
        }
    }

    /// The whole frame: length prefix and payload.
    public func encodedFrame() -> [UInt8] {
        [UInt8](unsafeUninitializedCapacity: WireSize.framePrefix + payloadSize) { buffer, count in
            var writer = WireWriter(UnsafeMutableRawBufferPointer(buffer))
            writer.writeFrameLength(payloadSize)
            write(into: &writer)
            count = writer.position
        }
    }

    /// The payload only (what the protocol's test vectors show).
    public func encodedPayload() -> [UInt8] {
        Array(encodedFrame().dropFirst(WireSize.framePrefix))
    }

    func write(into writer: inout WireWriter) {
        switch self {
        case .joinRoom(let roomID):
            writer.writeUInt32(0)
            writer.writeString(roomID)
        case .leaveRoom: writer.writeUInt32(1)
        case .ping: writer.writeUInt32(2)
        case .pong: writer.writeUInt32(3)
        case .broadcast(let data):
            writer.writeUInt32(4)
            data.withUnsafeBytes { writer.writeBytes($0) }
        case .echoTest(let data):
            writer.writeUInt32(5)
            data.withUnsafeBytes { writer.writeBytes($0) }
        }
    }

    /// Decodes one payload (without the length prefix); it must be consumed exactly.
    public init(payload: [UInt8]) throws(WireError) {
        let result = payload.withUnsafeBytes { raw in
            Result { () throws(WireError) -> ClientWire in try ClientRequest(payload: raw).owned() }
        }
        self = try result.get()
    }
}

/// A decoded `ClientWire` whose byte fields still point into the read buffer: the engine relays
/// them without an intermediate copy. Valid only while that buffer is.
package enum ClientRequest {
    case joinRoom(String)
    case leaveRoom
    case ping
    case pong
    case broadcast(UnsafeRawBufferPointer)
    case echoTest(UnsafeRawBufferPointer)

    @inline(__always)
    package init(payload: UnsafeRawBufferPointer) throws(WireError) {
        // The one request relayed per frame, read in place: tag 4 (UInt32), a UInt64 length that
        // is exactly what follows, the bytes. Anything else (or a Broadcast whose length does
        // not match, which is an error) takes the general decoder below.
        if payload.count >= Self.broadcastHeaderSize, let base = payload.baseAddress,
           UInt32(littleEndian: base.loadUnaligned(as: UInt32.self)) == 4,
           UInt64(littleEndian: base.loadUnaligned(fromByteOffset: 4, as: UInt64.self)) == UInt64(payload.count &- Self.broadcastHeaderSize) {
            self = .broadcast(UnsafeRawBufferPointer(start: base + Self.broadcastHeaderSize, count: payload.count &- Self.broadcastHeaderSize))
            return
        }
        try self.init(decoding: payload)
    }

    /// Tag and length of a Broadcast request.
    private static let broadcastHeaderSize = 12

    private init(decoding payload: UnsafeRawBufferPointer) throws(WireError) {
        if payload.isEmpty { throw .emptyPayload }
        var reader = WireReader(payload)
        switch try reader.readUInt32() {
        case 0: self = .joinRoom(try reader.readString())
        case 1: self = .leaveRoom
        case 2: self = .ping
        case 3: self = .pong
        case 4: self = .broadcast(try reader.readBytes())
        case 5: self = .echoTest(try reader.readBytes())
        case let tag: throw .unknownTag(tag)
        }
        try reader.expectEnd()
    }

    func owned() -> ClientWire {
        switch self {
        case .joinRoom(let roomID): return .joinRoom(roomID)
        case .leaveRoom: return .leaveRoom
        case .ping: return .ping
        case .pong: return .pong
        case .broadcast(let data): return .broadcast(Array(data))
        case .echoTest(let data): return .echoTest(Array(data))
        }
    }
}
