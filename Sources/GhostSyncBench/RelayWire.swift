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

/// The three relays' wire formats, as far as the load generator needs them: join a room,
/// publish to it, and pick relayed payloads out of the byte stream without copying them.
enum RelayWire {
    case ghost
    case redis
    case nats

    init(_ target: BenchTarget) {
        switch target {
        case .ghost: self = .ghost
        case .redis: self = .redis
        case .nats: self = .nats
        }
    }

    /// Bytes to send once connected, to join `room`.
    func handshake(room: String) -> [UInt8] {
        switch self {
        case .ghost:
            return ClientWire.joinRoom(room).encodedFrame()
        case .redis:
            return Array("HELLO 3\r\nSUBSCRIBE \(room)\r\n".utf8)
        case .nats:
            // PING after SUB: its PONG says the subscription is in place.
            return Array("CONNECT {\"verbose\":false,\"pedantic\":false,\"echo\":false}\r\nSUB \(room) 1\r\nPING\r\n".utf8)
        }
    }

    /// Appends one publish of `payload` to `room`.
    func appendPublish(room: String, payload: UnsafeRawBufferPointer, to out: inout [UInt8]) {
        switch self {
        case .ghost:
            let length = 4 + 8 + payload.count
            out += [UInt8(length >> 24 & 0xff), UInt8(length >> 16 & 0xff), UInt8(length >> 8 & 0xff), UInt8(length & 0xff)]
            out += [4, 0, 0, 0]
            withUnsafeBytes(of: UInt64(payload.count).littleEndian) { out += $0 }
            out += payload
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
    func parse(_ input: UnsafeRawBufferPointer, replies: inout [UInt8], _ handle: (RelayEvent) -> Void) -> Int {
        switch self {
        case .ghost: return Self.parseGhost(input, replies: &replies, handle)
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
            guard payload.count >= 4 else { continue }
            switch UInt32(littleEndian: payload.loadUnaligned(as: UInt32.self)) {
            case 0: handle(.ready)
            case 3: replies += ClientWire.pong.encodedFrame()
            case 5:
                let text = payload.count > 12 ? String(decoding: payload[12...], as: UTF8.self) : "error"
                handle(.failure(text))
            case 6 where payload.count >= 28:
                handle(.message(UnsafeRawBufferPointer(rebasing: payload[28...])))
            default: break
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
