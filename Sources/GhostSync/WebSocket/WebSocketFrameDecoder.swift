/// Why the server fails a WebSocket connection: the close code it sends and a reason.
package struct WebSocketError: Error, Equatable, Sendable, CustomStringConvertible {
    package let code: UInt16
    package let reason: String

    package init(code: UInt16, _ reason: String) {
        self.code = code
        self.reason = reason
    }

    static func protocolError(_ reason: String) -> WebSocketError { .init(code: WebSocketCloseCode.protocolError, reason) }

    package var description: String { "websocket \(code): \(reason)" }
}

/// What a client's frames amount to, handed out by `WebSocketFrameDecoder`.
package enum WebSocketEvent {
    /// A whole message (text or binary), reassembled from its fragments if it had any.
    case message(WebSocketOpcode, UnsafeRawBufferPointer)
    case ping(UnsafeRawBufferPointer)
    case pong
    /// The peer's Close: its code (nil when the frame had no payload) and its UTF-8 reason.
    case close(code: UInt16?, reason: UnsafeRawBufferPointer)
}

/// The server side of RFC 6455 framing, over a TCP byte stream split any way: many frames per
/// read, a frame over many reads, a header split across reads.
///
/// Every check that can be made from a header is made before any of its payload is stored:
/// reserved bits and opcodes, the client's mask, control-frame rules, minimal length encodings,
/// the order of fragments, text on a binary-only endpoint, and the message size cap (1009), so a
/// claimed 2^63-byte frame costs 14 bytes of buffer. A whole unfragmented frame in the read buffer
/// is unmasked in place and handed out with no copy; only an incomplete frame's bytes (in
/// `pending`) and a fragmented message's (in `fragments`) are kept.
package struct WebSocketFrameDecoder: Sendable {
    /// Largest message, fragments together (the relay's `maxPayload`).
    package let maxMessageSize: Int
    /// Whether text messages are allowed (the echo endpoint), checked as UTF-8; the relay
    /// itself takes binary only and fails a text message with 1003.
    package let acceptsText: Bool
    /// Raw (still masked) bytes of an incomplete frame, or of input kept by a `.pause`.
    private(set) var pending: [UInt8] = []
    /// The payload so far of a fragmented message, and its opcode (nil when none is open).
    private var fragments: [UInt8] = []
    private var fragmentOpcode: WebSocketOpcode?
    private var textValidator = UTF8Validator()

    package init(maxMessageSize: Int, acceptsText: Bool = false) {
        self.maxMessageSize = maxMessageSize
        self.acceptsText = acceptsText
    }

    package var hasPendingBytes: Bool { !pending.isEmpty }

    /// Bytes held for an incomplete frame or message (for the memory figures and tests).
    package var bufferedBytes: Int { pending.count + fragments.count }

    struct Header {
        var fin: Bool
        var opcode: WebSocketOpcode
        var size: Int
        var payloadLength: Int
        var key: UInt32
    }

    /// Feeds newly read bytes, which it may unmask in place; calls `handle` with each event.
    package mutating func feed(
        _ input: UnsafeMutableRawBufferPointer,
        _ handle: (WebSocketEvent) -> FrameAction
    ) throws(WebSocketError) -> FrameAction {
        var offset = 0
        if !pending.isEmpty {
            // Complete the frame begun in an earlier read, copying only what it still lacks.
            var header: Header?
            while header == nil {
                header = try parsePendingHeader()
                if header != nil { break }
                // Header still incomplete: add one byte at a time until it parses (≤ 14 bytes).
                guard offset < input.count else { return .proceed }
                pending.append(input[offset])
                offset += 1
            }
            let total = header!.size + header!.payloadLength
            let take = min(total - pending.count, input.count - offset)
            if take > 0 {
                pending.append(contentsOf: UnsafeRawBufferPointer(rebasing: input[offset..<(offset + take)]))
                offset += take
            }
            if pending.count < total { return .proceed }
            var frame = pending
            pending = []
            let whole = header!
            let result = frame.withUnsafeMutableBytes { raw in
                Result { () throws(WebSocketError) -> FrameAction in
                    try process(whole, payload: UnsafeMutableRawBufferPointer(rebasing: raw[whole.size...]), handle)
                }
            }
            let action = try result.get()
            if action != .proceed { return keep(UnsafeRawBufferPointer(rebasing: input[offset...]), after: action) }
        }
        while offset < input.count {
            let rest = UnsafeRawBufferPointer(rebasing: input[offset...])
            guard let header = try parseHeader(rest), rest.count >= header.size + header.payloadLength else { break }
            let payloadStart = offset + header.size
            let end = payloadStart + header.payloadLength
            let action = try process(header, payload: UnsafeMutableRawBufferPointer(rebasing: input[payloadStart..<end]), handle)
            offset = end
            if action != .proceed { return keep(UnsafeRawBufferPointer(rebasing: input[offset...]), after: action) }
        }
        if offset < input.count { pending.append(contentsOf: UnsafeRawBufferPointer(rebasing: input[offset...])) }
        return .proceed
    }

    /// Hands out what a `.pause` kept (and stores any incomplete tail again).
    package mutating func resume(_ handle: (WebSocketEvent) -> FrameAction) throws(WebSocketError) -> FrameAction {
        var kept = pending
        pending = []
        var decoder = self
        let result = kept.withUnsafeMutableBytes { raw in
            Result { () throws(WebSocketError) -> FrameAction in try decoder.feed(raw, handle) }
        }
        self = decoder
        return try result.get()
    }

    /// Drops every kept byte (the connection is closing).
    package mutating func reset() {
        pending = []
        fragments = []
        fragmentOpcode = nil
    }

    private mutating func keep(_ rest: UnsafeRawBufferPointer, after action: FrameAction) -> FrameAction {
        if action == .pause {
            if !rest.isEmpty { pending.append(contentsOf: rest) }
        } else {
            reset()
        }
        return action
    }

    private func parsePendingHeader() throws(WebSocketError) -> Header? {
        let result = pending.withUnsafeBytes { raw in
            Result { () throws(WebSocketError) -> Header? in try parseHeader(raw) }
        }
        return try result.get()
    }

    /// The header at the start of `bytes`, nil while incomplete; throws as soon as the bytes
    /// present break a rule.
    func parseHeader(_ bytes: UnsafeRawBufferPointer) throws(WebSocketError) -> Header? {
        guard bytes.count >= 2 else { return nil }
        let first = bytes[0]
        let second = bytes[1]
        if first & 0x70 != 0 { throw .protocolError("reserved bits set (no extension was negotiated)") }
        guard let opcode = WebSocketOpcode(rawValue: first & 0x0F) else {
            throw .protocolError("reserved opcode \(first & 0x0F)")
        }
        let fin = first & 0x80 != 0
        guard second & 0x80 != 0 else { throw .protocolError("unmasked client frame") }
        let shortLength = Int(second & 0x7F)
        if opcode.isControl {
            if !fin { throw .protocolError("fragmented control frame") }
            if shortLength > WebSocketFrame.maxControlPayload { throw .protocolError("control frame payload over 125 bytes") }
        } else if opcode == .continuation {
            if fragmentOpcode == nil { throw .protocolError("continuation frame with no message to continue") }
        } else {
            if fragmentOpcode != nil { throw .protocolError("new data frame inside a fragmented message") }
            if opcode == .text && !acceptsText {
                throw WebSocketError(code: WebSocketCloseCode.unsupportedData, "text messages are not accepted; send binary")
            }
        }
        let size: Int
        let length: UInt64
        switch shortLength {
        case 126:
            guard bytes.count >= 4 else { return nil }
            length = UInt64(UInt16(bigEndian: bytes.loadUnaligned(fromByteOffset: 2, as: UInt16.self)))
            if length < 126 { throw .protocolError("length \(length) not in its shortest encoding") }
            size = 8
        case 127:
            guard bytes.count >= 10 else { return nil }
            length = UInt64(bigEndian: bytes.loadUnaligned(fromByteOffset: 2, as: UInt64.self))
            if length >> 63 != 0 { throw .protocolError("64-bit length with its most significant bit set") }
            if length <= 0xFFFF { throw .protocolError("length \(length) not in its shortest encoding") }
            size = 14
        default:
            length = UInt64(shortLength)
            size = 6
        }
        if !opcode.isControl && length > UInt64(maxMessageSize - fragments.count) {
            throw WebSocketError(
                code: WebSocketCloseCode.messageTooBig,
                "message over \(maxMessageSize) bytes (frame of \(length) bytes after \(fragments.count))")
        }
        guard bytes.count >= size else { return nil }
        let key = bytes.loadUnaligned(fromByteOffset: size - 4, as: UInt32.self)
        return Header(fin: fin, opcode: opcode, size: size, payloadLength: Int(length), key: key)
    }

    /// One whole frame: unmask, then act on it.
    private mutating func process(
        _ header: Header, payload: UnsafeMutableRawBufferPointer, _ handle: (WebSocketEvent) -> FrameAction
    ) throws(WebSocketError) -> FrameAction {
        WebSocketFrame.unmask(payload, key: header.key)
        let bytes = UnsafeRawBufferPointer(payload)
        switch header.opcode {
        case .ping:
            return handle(.ping(bytes))
        case .pong:
            return handle(.pong)
        case .close:
            if bytes.isEmpty { return handle(.close(code: nil, reason: bytes)) }
            if bytes.count == 1 { throw .protocolError("close frame with a 1-byte payload") }
            let code = UInt16(bytes[0]) << 8 | UInt16(bytes[1])
            if !WebSocketCloseCode.isValidReceived(code) { throw .protocolError("invalid close code \(code)") }
            let reason = UnsafeRawBufferPointer(rebasing: bytes[2...])
            if !UTF8Validator.isValid(reason) {
                throw WebSocketError(code: WebSocketCloseCode.invalidPayload, "close reason is not UTF-8")
            }
            return handle(.close(code: code, reason: reason))
        case .text, .binary:
            if header.fin {
                if header.opcode == .text && !UTF8Validator.isValid(bytes) {
                    throw WebSocketError(code: WebSocketCloseCode.invalidPayload, "text message is not UTF-8")
                }
                return handle(.message(header.opcode, bytes))
            }
            fragmentOpcode = header.opcode
            textValidator = UTF8Validator()
            return try appendFragment(bytes, final: false, handle)
        case .continuation:
            return try appendFragment(bytes, final: header.fin, handle)
        }
    }

    private mutating func appendFragment(
        _ bytes: UnsafeRawBufferPointer, final: Bool, _ handle: (WebSocketEvent) -> FrameAction
    ) throws(WebSocketError) -> FrameAction {
        fragments.append(contentsOf: bytes)
        if fragmentOpcode == .text {
            // Failed at the first invalid fragment, not only once the message is whole.
            if !textValidator.consume(bytes) || (final && !textValidator.isComplete) {
                throw WebSocketError(code: WebSocketCloseCode.invalidPayload, "text message is not UTF-8")
            }
        }
        guard final, let opcode = fragmentOpcode else { return .proceed }
        let message = fragments
        fragments = []
        fragmentOpcode = nil
        return message.withUnsafeBytes { handle(.message(opcode, $0)) }
    }
}
