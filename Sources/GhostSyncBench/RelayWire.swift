import GhostSync

/// What a received chunk of protocol bytes meant to the load generator.
enum RelayEvent {
    /// Joined / subscribed: the connection is ready to measure.
    case ready
    /// A relayed message; the bytes are the sender's payload.
    case message(UnsafeRawBufferPointer)
    /// The relay reported an error.
    case failure(String)
}

/// The relays' wire formats, as far as the load generator needs them: join a room, publish to
/// it, and pick relayed payloads out of the byte stream without copying them. GhostSync comes
/// in two: its TCP framing and its WebSocket transport (`ghostWebSocket`), whose client frames
/// are masked with the connection's `maskingKey` (the other formats ignore it).
enum RelayWire {
    case ghost
    /// GhostSync over WebSocket, once upgraded (`WebSocketUpgrade` does the handshake).
    case ghostWebSocket
    case redis
    case nats

    init(_ target: BenchTarget, transport: BenchTransport = .tcp) {
        switch target {
        case .ghost: self = transport == .webSocket ? .ghostWebSocket : .ghost
        case .redis: self = .redis
        case .nats: self = .nats
        }
    }

    /// Bytes to send once connected (for WebSocket: once upgraded), to join `room`.
    func handshake(room: String, maskingKey: UInt32 = 0) -> [UInt8] {
        switch self {
        case .ghost:
            return ClientWire.joinRoom(room).encodedFrame()
        case .ghostWebSocket:
            let payload = Array(ClientWire.joinRoom(room).encodedFrame().dropFirst(4))
            var out: [UInt8] = []
            Self.appendMaskedFrame(.binary, payloadBytes: payload.count, maskingKey: maskingKey, to: &out) { $0 += payload }
            return out
        case .redis:
            return Array("HELLO 3\r\nSUBSCRIBE \(room)\r\n".utf8)
        case .nats:
            // PING after SUB: its PONG says the subscription is in place.
            return Array("CONNECT {\"verbose\":false,\"pedantic\":false,\"echo\":false}\r\nSUB \(room) 1\r\nPING\r\n".utf8)
        }
    }

    /// Appends one publish of `payload` to `room`.
    func appendPublish(room: String, payload: UnsafeRawBufferPointer, maskingKey: UInt32 = 0, to out: inout [UInt8]) {
        switch self {
        case .ghost:
            let length = 4 + 8 + payload.count
            out += [UInt8(length >> 24 & 0xff), UInt8(length >> 16 & 0xff), UInt8(length >> 8 & 0xff), UInt8(length & 0xff)]
            out += [4, 0, 0, 0]
            withUnsafeBytes(of: UInt64(payload.count).littleEndian) { out += $0 }
            out += payload
        case .ghostWebSocket:
            // ClientWire.broadcast without the length prefix: tag 4, the data's length, the data.
            Self.appendMaskedFrame(.binary, payloadBytes: 4 + 8 + payload.count, maskingKey: maskingKey, to: &out) { out in
                var tagAndLength: (UInt64, UInt64) = (0, 0)
                withUnsafeMutableBytes(of: &tagAndLength) { raw in
                    raw.storeBytes(of: UInt32(4).littleEndian, toByteOffset: 0, as: UInt32.self)
                    raw.storeBytes(of: UInt64(payload.count).littleEndian, toByteOffset: 4, as: UInt64.self)
                    out += UnsafeRawBufferPointer(rebasing: raw[0..<12])
                }
                out += payload
            }
        case .redis:
            out += Array("*3\r\n$7\r\nPUBLISH\r\n$\(room.utf8.count)\r\n\(room)\r\n$\(payload.count)\r\n".utf8)
            out += payload
            out += [13, 10]
        case .nats:
            out += Array("PUB \(room) \(payload.count)\r\n".utf8)
            out += payload
            out += [13, 10]
        }
    }

    /// Consumes every complete message at the front of `input` (from `start`), calling `handle`
    /// with each event and appending any protocol replies (pongs) to `replies`. Returns the
    /// offset of the first byte not consumed.
    func parse(_ input: UnsafeRawBufferPointer, maskingKey: UInt32 = 0, replies: inout [UInt8], _ handle: (RelayEvent) -> Void) -> Int {
        switch self {
        case .ghost: return Self.parseGhost(input, replies: &replies, handle)
        case .ghostWebSocket: return Self.parseGhostWebSocket(input, maskingKey: maskingKey, replies: &replies, handle)
        case .redis: return Self.parseRESP(input, handle)
        case .nats: return Self.parseNATS(input, replies: &replies, handle)
        }
    }

    private static func parseGhost(_ input: UnsafeRawBufferPointer, replies: inout [UInt8], _ handle: (RelayEvent) -> Void) -> Int {
        var offset = 0
        while input.count - offset >= 8 {
            let length = Int(UInt32(bigEndian: input.loadUnaligned(fromByteOffset: offset, as: UInt32.self)))
            guard input.count - offset - 4 >= length else { break }
            let payload = UnsafeRawBufferPointer(rebasing: input[(offset + 4)..<(offset + 4 + length)])
            offset += 4 + length
            if handleGhostPayload(payload, handle) { replies += ClientWire.pong.encodedFrame() }
        }
        return offset
    }

    /// One ghost-sync server payload (`ServerWire`): returns true for a relay Ping, which the
    /// caller answers with a Pong in its own framing.
    @inline(__always)
    private static func handleGhostPayload(_ payload: UnsafeRawBufferPointer, _ handle: (RelayEvent) -> Void) -> Bool {
        guard payload.count >= 4 else { return false }
        switch UInt32(littleEndian: payload.loadUnaligned(as: UInt32.self)) {
        case 0: handle(.ready)
        case 3: return true
        case 5:
            let text = payload.count > 12 ? String(decoding: payload[12...], as: UTF8.self) : "error"
            handle(.failure(text))
        case 6 where payload.count >= 28:
            handle(.message(UnsafeRawBufferPointer(rebasing: payload[28...])))
        default: break
        }
        return false
    }

    // MARK: GhostSync over WebSocket

    /// Appends one final, masked frame whose `payloadBytes` bytes `writePayload` appends, then
    /// masks them in place, eight bytes at a time (`WebSocketFrame.unmask`: XOR is its own
    /// inverse). `maskingKey` is the key's 4 wire bytes loaded as a little-endian word, the form
    /// `unmask` takes. No allocation beyond `out`'s own growth.
    @inline(__always)
    static func appendMaskedFrame(_ opcode: WebSocketOpcode, payloadBytes length: Int, maskingKey: UInt32, to out: inout [UInt8],
                                  _ writePayload: (inout [UInt8]) -> Void) {
        // FIN + opcode, MASK + the 7-bit length or its 16/64-bit escape, then the key.
        var header: (UInt64, UInt64) = (0, 0)
        let headerSize = withUnsafeMutableBytes(of: &header) { raw -> Int in
            raw[0] = 0x80 | opcode.rawValue
            var size: Int
            if length < 126 {
                raw[1] = 0x80 | UInt8(length)
                size = 2
            } else if length <= 0xFFFF {
                raw[1] = 0x80 | 126
                raw.storeBytes(of: UInt16(length).bigEndian, toByteOffset: 2, as: UInt16.self)
                size = 4
            } else {
                raw[1] = 0x80 | 127
                raw.storeBytes(of: UInt64(length).bigEndian, toByteOffset: 2, as: UInt64.self)
                size = 10
            }
            raw.storeBytes(of: maskingKey.littleEndian, toByteOffset: size, as: UInt32.self)
            return size + 4
        }
        withUnsafeBytes(of: &header) { out += UnsafeRawBufferPointer(rebasing: $0[0..<headerSize]) }
        let start = out.count
        writePayload(&out)
        assert(out.count - start == length, "the payload written must be the length announced")
        out.withUnsafeMutableBytes { bytes in
            WebSocketFrame.unmask(UnsafeMutableRawBufferPointer(rebasing: bytes[start...]), key: maskingKey)
        }
    }

    /// Consumes every complete server frame at the front of `input` (unmasked; 2-, 4- or
    /// 10-byte headers), each binary message one ghost-sync payload. A relay Ping (ServerWire
    /// tag 3) and a WebSocket Ping are answered with a masked ClientWire Pong and Pong frame;
    /// a Close, a text or fragmented message, or a masked frame is a failure (the relay sends
    /// none of them to a client in good standing).
    private static func parseGhostWebSocket(_ input: UnsafeRawBufferPointer, maskingKey: UInt32, replies: inout [UInt8],
                                            _ handle: (RelayEvent) -> Void) -> Int {
        var offset = 0
        while input.count - offset >= 2 {
            let first = input[offset]
            let second = input[offset + 1]
            var headerSize = 2
            var length = Int(second & 0x7F)
            if length == 126 {
                guard input.count - offset >= 4 else { break }
                length = Int(UInt16(bigEndian: input.loadUnaligned(fromByteOffset: offset + 2, as: UInt16.self)))
                headerSize = 4
            } else if length == 127 {
                guard input.count - offset >= 10 else { break }
                let wide = UInt64(bigEndian: input.loadUnaligned(fromByteOffset: offset + 2, as: UInt64.self))
                guard wide <= UInt64(Int32.max) else {
                    handle(.failure("WebSocket frame of \(wide) bytes announced"))
                    return input.count
                }
                length = Int(wide)
                headerSize = 10
            }
            guard input.count - offset - headerSize >= length else { break }
            let payload = UnsafeRawBufferPointer(rebasing: input[(offset + headerSize)..<(offset + headerSize + length)])
            offset += headerSize + length
            guard second & 0x80 == 0 else {
                handle(.failure("masked WebSocket frame from the relay"))
                return input.count
            }
            switch first {
            case 0x80 | WebSocketOpcode.binary.rawValue:
                if handleGhostPayload(payload, handle) {
                    withUnsafeBytes(of: UInt32(3).littleEndian) { pong in
                        appendMaskedFrame(.binary, payloadBytes: 4, maskingKey: maskingKey, to: &replies) { $0 += pong }
                    }
                }
            case 0x80 | WebSocketOpcode.ping.rawValue:
                appendMaskedFrame(.pong, payloadBytes: payload.count, maskingKey: maskingKey, to: &replies) { $0 += payload }
            case 0x80 | WebSocketOpcode.pong.rawValue:
                break
            case 0x80 | WebSocketOpcode.close.rawValue:
                let code = payload.count >= 2 ? String(Int(payload[0]) << 8 | Int(payload[1])) : "none"
                let reason = payload.count > 2 ? ": " + String(decoding: payload[2...], as: UTF8.self) : ""
                handle(.failure("the relay closed the WebSocket (code \(code)\(reason))"))
                return input.count
            default:
                handle(.failure("unexpected WebSocket frame (first byte 0x\(String(first, radix: 16))): the relay sends only final binary frames"))
                return input.count
            }
        }
        return offset
    }

    // MARK: RESP3

    /// Parses one RESP value at `offset`; returns the offset after it, or nil if incomplete.
    private static func skipRESP(_ bytes: UnsafeRawBufferPointer, _ offset: Int) -> Int? {
        guard offset < bytes.count, let lineEnd = lineEnd(bytes, offset + 1) else { return nil }
        let header = String(decoding: bytes[(offset + 1)..<lineEnd], as: UTF8.self)
        let next = lineEnd + 2
        switch bytes[offset] {
        case UInt8(ascii: "$"), UInt8(ascii: "="), UInt8(ascii: "!"):
            guard let length = Int(header) else { return nil }
            if length < 0 { return next }
            return bytes.count >= next + length + 2 ? next + length + 2 : nil
        case UInt8(ascii: "*"), UInt8(ascii: ">"), UInt8(ascii: "~"), UInt8(ascii: "%"), UInt8(ascii: "|"):
            guard let count = Int(header) else { return nil }
            var position = next
            let elements = bytes[offset] == UInt8(ascii: "%") || bytes[offset] == UInt8(ascii: "|") ? count * 2 : max(0, count)
            for _ in 0..<elements {
                guard let after = skipRESP(bytes, position) else { return nil }
                position = after
            }
            if bytes[offset] == UInt8(ascii: "|") { return skipRESP(bytes, position) }  // attribute, then the value
            return position
        default:
            return next  // simple string, error, integer, null, boolean, double, big number
        }
    }

    private static func parseRESP(_ input: UnsafeRawBufferPointer, _ handle: (RelayEvent) -> Void) -> Int {
        var offset = 0
        while let end = skipRESP(input, offset) {
            let kind = input[offset]
            if kind == UInt8(ascii: ">") || kind == UInt8(ascii: "*") {
                // ["message", channel, payload] or ["subscribe", channel, count]
                if let first = bulk(input, after: lineEnd(input, offset + 1).map { $0 + 2 }) {
                    let name = String(decoding: first.bytes, as: UTF8.self)
                    if name == "message", let channel = bulk(input, after: first.end), let data = bulk(input, after: channel.end) {
                        handle(.message(data.bytes))
                    } else if name == "subscribe" {
                        handle(.ready)
                    }
                }
            } else if kind == UInt8(ascii: "-") {
                handle(.failure(String(decoding: input[(offset + 1)..<(end - 2)], as: UTF8.self)))
            }
            offset = end
        }
        return offset
    }

    private static func bulk(_ bytes: UnsafeRawBufferPointer, after offset: Int?) -> (bytes: UnsafeRawBufferPointer, end: Int)? {
        guard let offset, offset < bytes.count, bytes[offset] == UInt8(ascii: "$"),
              let lineEnd = lineEnd(bytes, offset + 1),
              let length = Int(String(decoding: bytes[(offset + 1)..<lineEnd], as: UTF8.self)) else { return nil }
        let start = lineEnd + 2
        guard bytes.count >= start + length + 2 else { return nil }
        return (UnsafeRawBufferPointer(rebasing: bytes[start..<(start + length)]), start + length + 2)
    }

    private static func lineEnd(_ bytes: UnsafeRawBufferPointer, _ from: Int) -> Int? {
        var index = from
        while index + 1 < bytes.count {
            if bytes[index] == 13 && bytes[index + 1] == 10 { return index }
            index += 1
        }
        return nil
    }

    // MARK: NATS

    private static func parseNATS(_ input: UnsafeRawBufferPointer, replies: inout [UInt8], _ handle: (RelayEvent) -> Void) -> Int {
        var offset = 0
        while let end = lineEnd(input, offset) {
            let line = input[offset..<end]
            if line.starts(with: "MSG ".utf8) {
                let fields = String(decoding: line, as: UTF8.self).split(separator: " ")
                guard let size = fields.last.flatMap({ Int($0) }) else { return end + 2 }
                let start = end + 2
                guard input.count >= start + size + 2 else { break }
                handle(.message(UnsafeRawBufferPointer(rebasing: input[start..<(start + size)])))
                offset = start + size + 2
                continue
            }
            if line.starts(with: "PING".utf8) {
                replies += Array("PONG\r\n".utf8)
            } else if line.starts(with: "PONG".utf8) {
                handle(.ready)
            } else if line.starts(with: "-ERR".utf8) {
                handle(.failure(String(decoding: line, as: UTF8.self)))
            }
            offset = end + 2
        }
        return offset
    }
}
