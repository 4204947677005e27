#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Splits the byte stream a NATS server sends into operations, whatever the split of the
/// reads: an op line split anywhere (even between its CR and LF), a payload over many reads,
/// many operations per read.
///
/// A message whose control line, payload and trailing CR LF are all in the fed buffer is handed
/// out pointing into that buffer (zero copy). Only the bytes of an incomplete operation are kept
/// (in `pending`, empty at an operation boundary): at most the control line cap while the line
/// is incomplete, and a message's line plus its payload once the line announced one, checked
/// against `maxPayload` before any payload byte is stored.
///
/// Strict where the protocol is (CR LF line ends, numeric fields, the header block's grammar,
/// CR LF after every payload) and lenient where nats-server is (operation names in any case,
/// fields separated by any run of spaces and tabs). Any error means the stream is out of step:
/// close the connection.
///
/// The parser is a value owned by one connection's thread; `Sendable` so it can move with it.
package struct NATSParser: Sendable {
    /// nats-server's `max_control_line` default: the longest op line, CR LF excluded.
    package static let maxControlLine = 4096

    /// The largest payload (headers included) accepted: the server's `max_payload` from INFO.
    package var maxPayload: Int
    /// The longest control line accepted (CR LF excluded).
    package let maxControlLine: Int
    /// Bytes of an incomplete operation: a control line without its LF yet, or a message's
    /// whole control line and the part of its payload received so far.
    private(set) var pending: [UInt8] = []
    /// The parsed control line of the message whose bytes `pending` holds, once its LF is in.
    private var pendingHead: MessageHead?

    /// Buffers kept after an incomplete message up to this size; larger ones are released.
    private static let retainedCapacity = 64 * 1024

    package init(maxPayload: Int, maxControlLine: Int = NATSParser.maxControlLine) {
        self.maxPayload = maxPayload
        self.maxControlLine = maxControlLine
    }

    /// True when an operation is incomplete (bytes are held for it).
    package var hasPendingBytes: Bool { !pending.isEmpty }

    /// The control line of MSG or HMSG: field positions relative to the line's first byte.
    struct MessageHead: Sendable {
        var subject: Range<Int>
        var sid: UInt64
        var replyTo: Range<Int>?
        /// `hdrlen` of HMSG; nil for MSG.
        var headerLength: Int?
        /// Payload bytes that follow the line (headers included), before the final CR LF.
        var total: Int
        /// Where the payload starts: just past the line's LF.
        var payloadStart: Int
        var byteCount: Int { payloadStart + total + 2 }
    }

    enum Line {
        case control(NATSServerMessage)
        case message(MessageHead)
    }

    /// Feeds newly read bytes; calls `handle` with each complete operation, in order.
    /// `.message` buffers are valid only during that call.
    package mutating func feed(_ input: UnsafeRawBufferPointer, _ handle: (NATSServerMessage) -> Void) throws(NATSProtocolError) {
        var offset = 0
        if !pending.isEmpty {
            offset = try completePending(input, handle)
            if !pending.isEmpty { return }
        }
        while offset < input.count {
            let rest = UnsafeRawBufferPointer(rebasing: input[offset...])
            guard let lineFeed = findLineFeed(rest, from: 0) else {
                try checkIncompleteLine(length: rest.count)
                pending.append(contentsOf: rest)
                return
            }
            switch try parseLine(rest, lineFeed: lineFeed) {
            case .control(let message):
                offset += lineFeed + 1
                handle(message)
            case .message(let head):
                guard rest.count >= head.byteCount else {
                    // The payload is still arriving: keep the line and what there is of it.
                    pending.reserveCapacity(head.byteCount)
                    pending.append(contentsOf: rest)
                    pendingHead = head
                    return
                }
                offset += head.byteCount
                handle(.message(try Self.message(head, in: rest).get()))
            }
        }
    }

    /// Adds to the incomplete operation in `pending`; hands it out once whole. Returns how many
    /// bytes of `input` it took (all of them while the operation is still incomplete).
    private mutating func completePending(_ input: UnsafeRawBufferPointer, _ handle: (NATSServerMessage) -> Void) throws(NATSProtocolError) -> Int {
        var taken = 0
        if pendingHead == nil {
            // The control line is incomplete; `pending` holds no LF.
            guard let lineFeed = findLineFeed(input, from: 0, alreadyScanned: pending.count) else {
                try checkIncompleteLine(length: pending.count + input.count)
                pending.append(contentsOf: input)
                return input.count
            }
            pending.append(contentsOf: UnsafeRawBufferPointer(rebasing: input[...lineFeed]))
            taken = lineFeed + 1
            let parsed = try pending.withUnsafeBytes { line in
                Result { () throws(NATSProtocolError) -> Line in try parseLine(line, lineFeed: line.count - 1) }
            }.get()
            switch parsed {
            case .control(let message):
                clearPending()
                handle(message)
                return taken
            case .message(let head):
                pendingHead = head
                pending.reserveCapacity(head.byteCount)
            }
        }
        guard let head = pendingHead else { return taken }
        let take = min(head.byteCount - pending.count, input.count - taken)
        pending.append(contentsOf: UnsafeRawBufferPointer(rebasing: input[taken..<(taken + take)]))
        taken += take
        guard pending.count == head.byteCount else { return taken }
        let result = pending.withUnsafeBytes { whole in
            Self.message(head, in: whole).map { message in handle(.message(message)) }
        }
        clearPending()
        try result.get()
        return taken
    }

    private mutating func clearPending() {
        pendingHead = nil
        pending.removeAll(keepingCapacity: pending.capacity <= Self.retainedCapacity)
    }

    /// An incomplete line of `length` bytes is already too long if it exceeds the cap plus
    /// the CR that may end it.
    private func checkIncompleteLine(length: Int) throws(NATSProtocolError) {
        if length > maxControlLine + 1 { throw .controlLineTooLong(limit: maxControlLine) }
    }

    /// The index of the first LF in `bytes`, searching no further than a line could reach
    /// (`alreadyScanned` bytes of the line came in earlier reads).
    private func findLineFeed(_ bytes: UnsafeRawBufferPointer, from start: Int, alreadyScanned: Int = 0) -> Int? {
        let limit = min(bytes.count, start + max(0, maxControlLine + 2 - alreadyScanned))
        var index = start
        while index < limit {
            if bytes[index] == 10 { return index }
            index += 1
        }
        return nil
    }

    // MARK: Control lines

    /// Parses the line that ends with the LF at `lineFeed` in `bytes`.
    private func parseLine(_ bytes: UnsafeRawBufferPointer, lineFeed: Int) throws(NATSProtocolError) -> Line {
        guard lineFeed > 0, bytes[lineFeed - 1] == 13 else { throw .missingCarriageReturn }
        let length = lineFeed - 1
        guard length <= maxControlLine else { throw .controlLineTooLong(limit: maxControlLine) }
        let line = UnsafeRawBufferPointer(rebasing: bytes[..<length])
        var fields = NATSFieldScanner(line)
        guard let operation = fields.next() else { throw .unknownOperation("") }
        let name = UnsafeRawBufferPointer(rebasing: line[operation])
        // MSG first: it is the hot path.
        if Self.isOperation(name, "MSG") {
            return .message(try messageHead(&fields, line: line, headers: false, payloadStart: lineFeed + 1))
        }
        if Self.isOperation(name, "HMSG") {
            return .message(try messageHead(&fields, line: line, headers: true, payloadStart: lineFeed + 1))
        }
        if Self.isOperation(name, "PING") { return try .control(bare(.ping, "PING", &fields, line)) }
        if Self.isOperation(name, "PONG") { return try .control(bare(.pong, "PONG", &fields, line)) }
        if Self.isOperation(name, "+OK") { return try .control(bare(.ok, "+OK", &fields, line)) }
        if Self.isOperation(name, "-ERR") {
            return .control(.error(Self.errorText(UnsafeRawBufferPointer(rebasing: line[operation.upperBound...]))))
        }
        if Self.isOperation(name, "INFO") {
            guard let json = fields.next() else { throw .malformedArguments(operation: "INFO", line: Self.excerpt(line)) }
            do {
                let info = try JSONDecoder().decode(NATSServerInfo.self, from: Data(UnsafeRawBufferPointer(rebasing: line[json.lowerBound...])))
                return .control(.info(info))
            } catch {
                throw .invalidInfo("\(error)")
            }
        }
        throw .unknownOperation(String(decoding: name.prefix(32), as: UTF8.self))
    }

    /// `MSG <subject> <sid> [reply-to] <#bytes>` or `HMSG <subject> <sid> [reply-to] <#header bytes> <#total bytes>`.
    private func messageHead(_ fields: inout NATSFieldScanner, line: UnsafeRawBufferPointer, headers: Bool, payloadStart: Int) throws(NATSProtocolError) -> MessageHead {
        let operation = headers ? "HMSG" : "MSG"
        let first = fields.next(), second = fields.next(), third = fields.next()
        let fourth = fields.next(), fifth = fields.next(), sixth = fields.next()
        // At most five arguments (HMSG with a reply subject); a sixth is an error.
        guard sixth == nil, let subject = first, let sidField = second, let third else {
            throw .malformedArguments(operation: operation, line: Self.excerpt(line))
        }
        var replyTo: Range<Int>?
        var headerLengthField: Range<Int>?
        let totalField: Range<Int>
        switch (headers, fourth, fifth) {
        case (false, nil, nil): totalField = third
        case (false, let size?, nil): replyTo = third; totalField = size
        case (true, let total?, nil): headerLengthField = third; totalField = total
        case (true, let headerLength?, let total?): replyTo = third; headerLengthField = headerLength; totalField = total
        default: throw .malformedArguments(operation: operation, line: Self.excerpt(line))
        }
        guard let sid = Self.decimal(UnsafeRawBufferPointer(rebasing: line[sidField])),
              let total = Self.decimal(UnsafeRawBufferPointer(rebasing: line[totalField])),
              total <= UInt64(Int.max / 2) else {
            throw .malformedArguments(operation: operation, line: Self.excerpt(line))
        }
        var headerLength: Int?
        if let headerLengthField {
            guard let length = Self.decimal(UnsafeRawBufferPointer(rebasing: line[headerLengthField])), length <= total,
                  length >= UInt64(NATSHeaderBlock.minimumLength) else {
                throw .malformedArguments(operation: operation, line: Self.excerpt(line))
            }
            headerLength = Int(length)
        }
        guard total <= UInt64(maxPayload) else { throw .payloadTooLarge(size: Int(total), limit: maxPayload) }
        return MessageHead(subject: subject, sid: sid, replyTo: replyTo, headerLength: headerLength, total: Int(total), payloadStart: payloadStart)
    }

    /// PING, PONG and +OK take no arguments.
    private func bare(_ message: NATSServerMessage, _ operation: String, _ fields: inout NATSFieldScanner, _ line: UnsafeRawBufferPointer) throws(NATSProtocolError) -> NATSServerMessage {
        guard fields.next() == nil else { throw .malformedArguments(operation: operation, line: Self.excerpt(line)) }
        return message
    }

    /// The message whose whole bytes (line, payload, CR LF) start at `bytes[0]`.
    static func message(_ head: MessageHead, in bytes: UnsafeRawBufferPointer) -> Result<NATSMessage, NATSProtocolError> {
        let end = head.payloadStart + head.total
        guard bytes[end] == 13, bytes[end + 1] == 10 else { return .failure(.missingPayloadTerminator) }
        var headerBytes: UnsafeRawBufferPointer?
        var status: Int?
        var payloadStart = head.payloadStart
        if let headerLength = head.headerLength {
            let block = UnsafeRawBufferPointer(rebasing: bytes[head.payloadStart..<(head.payloadStart + headerLength)])
            switch NATSHeaderBlock.validate(block) {
            case .success(let code): status = code
            case .failure(let error): return .failure(error)
            }
            headerBytes = block
            payloadStart += headerLength
        }
        return .success(NATSMessage(
            subjectBytes: UnsafeRawBufferPointer(rebasing: bytes[head.subject]),
            sid: head.sid,
            replyToBytes: head.replyTo.map { UnsafeRawBufferPointer(rebasing: bytes[$0]) },
            headerBytes: headerBytes,
            status: status,
            payload: UnsafeRawBufferPointer(rebasing: bytes[payloadStart..<end])
        ))
    }

    // MARK: Bytes

    /// Whether `name` is `operation` (uppercase ASCII), in any case.
    static func isOperation(_ name: UnsafeRawBufferPointer, _ operation: StaticString) -> Bool {
        guard name.count == operation.utf8CodeUnitCount else { return false }
        let expected = UnsafeRawBufferPointer(start: operation.utf8Start, count: operation.utf8CodeUnitCount)
        for index in 0..<name.count {
            let byte = name[index]
            let upper = byte >= 0x61 && byte <= 0x7A ? byte - 0x20 : byte
            if upper != expected[index] { return false }
        }
        return true
    }

    /// A decimal that fits a UInt64: digits only (no sign), at most 20 of them.
    static func decimal(_ bytes: UnsafeRawBufferPointer) -> UInt64? {
        guard !bytes.isEmpty, bytes.count <= 20 else { return nil }
        var value: UInt64 = 0
        for byte in bytes {
            guard byte >= 0x30, byte <= 0x39 else { return nil }
            let (times10, overflow) = value.multipliedReportingOverflow(by: 10)
            let (sum, carry) = times10.addingReportingOverflow(UInt64(byte - 0x30))
            guard !overflow, !carry else { return nil }
            value = sum
        }
        return value
    }

    /// `-ERR 'Invalid Subject'` → `Invalid Subject`: trimmed, single quotes removed.
    static func errorText(_ bytes: UnsafeRawBufferPointer) -> String {
        var start = 0
        var end = bytes.count
        while start < end, NATSHeaderBlock.isSpace(bytes[start]) { start += 1 }
        while end > start, NATSHeaderBlock.isSpace(bytes[end - 1]) { end -= 1 }
        if end - start >= 2, bytes[start] == UInt8(ascii: "'"), bytes[end - 1] == UInt8(ascii: "'") {
            start += 1
            end -= 1
        }
        return String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<end]), as: UTF8.self)
    }

    /// At most 256 bytes of a line, for error messages.
    static func excerpt(_ line: UnsafeRawBufferPointer) -> String {
        String(decoding: line.prefix(256), as: UTF8.self)
    }
}

/// The fields of a control line: runs of bytes separated by any run of spaces and tabs.
struct NATSFieldScanner {
    private let line: UnsafeRawBufferPointer
    private var index = 0

    init(_ line: UnsafeRawBufferPointer) { self.line = line }

    mutating func next() -> Range<Int>? {
        while index < line.count, NATSHeaderBlock.isSpace(line[index]) { index += 1 }
        guard index < line.count else { return nil }
        let start = index
        while index < line.count, !NATSHeaderBlock.isSpace(line[index]) { index += 1 }
        return start..<index
    }
}
