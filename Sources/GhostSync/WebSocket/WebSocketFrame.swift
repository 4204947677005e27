/// RFC 6455 §5.2 framing: opcodes, close codes, header encoding and (un)masking. Shared by the
/// server codec, the load generator and the tests (which play the client and must mask).
package enum WebSocketOpcode: UInt8, Sendable {
    case continuation = 0x0
    case text = 0x1
    case binary = 0x2
    case close = 0x8
    case ping = 0x9
    case pong = 0xA

    package var isControl: Bool { rawValue & 0x8 != 0 }
}

/// The close status codes the relay sends (RFC 6455 §7.4.1), and the check of received ones.
package enum WebSocketCloseCode {
    package static let normal: UInt16 = 1000
    package static let goingAway: UInt16 = 1001
    package static let protocolError: UInt16 = 1002
    package static let unsupportedData: UInt16 = 1003
    package static let invalidPayload: UInt16 = 1007
    package static let policyViolation: UInt16 = 1008
    package static let messageTooBig: UInt16 = 1009
    package static let internalError: UInt16 = 1011

    /// Whether a peer may send `code` in a Close frame: the codes RFC 6455 defines for use on the
    /// wire (1000–1003, 1007–1011), the IANA-registered 1012–1014, and the ranges for libraries
    /// and applications (3000–4999). 1004–1006 and 1015 are reserved and never sent; anything
    /// else is unassigned.
    package static func isValidReceived(_ code: UInt16) -> Bool {
        switch code {
        case 1000...1003, 1007...1014, 3000...4999: return true
        default: return false
        }
    }
}

package enum WebSocketFrame {
    /// Longest header: 2 bytes, an 8-byte length and a 4-byte mask.
    package static let maxHeaderSize = 14
    /// Longest header the server writes (it never masks).
    package static let maxServerHeaderSize = 10
    /// Largest payload of a control frame (§5.5).
    package static let maxControlPayload = 125

    /// Size of an unmasked header for a payload of `length` bytes (minimal length encoding).
    @inline(__always)
    package static func serverHeaderSize(payloadLength length: Int) -> Int {
        length < 126 ? 2 : (length <= 0xFFFF ? 4 : 10)
    }

    /// Writes a final, unmasked frame header; returns its size.
    @inline(__always)
    @discardableResult
    package static func writeServerHeader(opcode: WebSocketOpcode, payloadLength length: Int, to destination: UnsafeMutableRawPointer) -> Int {
        destination.storeBytes(of: 0x80 | opcode.rawValue, as: UInt8.self)
        if length < 126 {
            destination.storeBytes(of: UInt8(length), toByteOffset: 1, as: UInt8.self)
            return 2
        }
        if length <= 0xFFFF {
            destination.storeBytes(of: 126, toByteOffset: 1, as: UInt8.self)
            destination.storeBytes(of: UInt16(length).bigEndian, toByteOffset: 2, as: UInt16.self)
            return 4
        }
        destination.storeBytes(of: 127, toByteOffset: 1, as: UInt8.self)
        destination.storeBytes(of: UInt64(length).bigEndian, toByteOffset: 2, as: UInt64.self)
        return 10
    }

    /// A whole unmasked server frame.
    package static func serverFrame(opcode: WebSocketOpcode, payload: some Collection<UInt8>) -> [UInt8] {
        var header = [UInt8](repeating: 0, count: maxServerHeaderSize)
        let size = header.withUnsafeMutableBytes { writeServerHeader(opcode: opcode, payloadLength: payload.count, to: $0.baseAddress!) }
        return Array(header.prefix(size)) + payload
    }

    /// A Close frame's payload: the code, then a reason cut to fit a control frame at a
    /// character boundary.
    package static func closePayload(code: UInt16, reason: String) -> [UInt8] {
        var payload = [UInt8(code >> 8), UInt8(code & 0xFF)]
        var reasonBytes = 0
        for character in reason {
            let bytes = character.utf8.count
            guard reasonBytes + bytes <= maxControlPayload - 2 else { break }
            payload.append(contentsOf: character.utf8)
            reasonBytes += bytes
        }
        return payload
    }

    /// A whole masked client frame (the tests and the load generator play browsers). `mask`'s
    /// high byte is the first key byte on the wire (unlike `unmask`'s `key`, which is the wire
    /// bytes loaded as a little-endian word).
    package static func clientFrame(opcode: WebSocketOpcode, payload: some Collection<UInt8>, fin: Bool = true, mask: UInt32) -> [UInt8] {
        var frame: [UInt8] = [(fin ? 0x80 : 0) | opcode.rawValue]
        let length = payload.count
        if length < 126 {
            frame.append(0x80 | UInt8(length))
        } else if length <= 0xFFFF {
            frame.append(0x80 | 126)
            frame.append(contentsOf: [UInt8(length >> 8), UInt8(length & 0xFF)])
        } else {
            frame.append(0x80 | 127)
            frame.append(contentsOf: (0..<8).reversed().map { UInt8(truncatingIfNeeded: UInt64(length) >> ($0 * 8)) })
        }
        let maskBytes = (0..<4).map { UInt8(truncatingIfNeeded: mask >> (24 - $0 * 8)) }
        frame.append(contentsOf: maskBytes)
        for (index, byte) in payload.enumerated() { frame.append(byte ^ maskBytes[index & 3]) }
        return frame
    }

    /// XORs `bytes` in place with the masking key, starting `phase` bytes into the key's cycle.
    /// `key` is the 4 key bytes as they lie on the wire, loaded as a little-endian word (byte 0
    /// in the low bits). Eight bytes at a time (the key repeated into one word), then byte by
    /// byte for the tail; no allocation.
    @inline(__always)
    package static func unmask(_ bytes: UnsafeMutableRawBufferPointer, key: UInt32, phase: Int = 0) {
        guard let base = bytes.baseAddress else { return }
        let shift = UInt32((phase & 3) * 8)
        // The key as it lines up with byte 0 of `bytes`.
        let rotated = shift == 0 ? key : (key >> shift) | (key << (32 - shift))
        let word = UInt64(rotated) | UInt64(rotated) << 32
        let count = bytes.count
        var offset = 0
        while offset + 8 <= count {
            let value = base.loadUnaligned(fromByteOffset: offset, as: UInt64.self)
            base.storeBytes(of: value ^ word, toByteOffset: offset, as: UInt64.self)
            offset += 8
        }
        while offset < count {
            let byte = base.load(fromByteOffset: offset, as: UInt8.self)
            base.storeBytes(of: byte ^ UInt8(truncatingIfNeeded: rotated >> UInt32((offset & 3) * 8)), toByteOffset: offset, as: UInt8.self)
            offset += 1
        }
    }
}

#if !_endian(little)
#error("WebSocketFrame.unmask loads the masking key as a little-endian word")
#endif
