/// The header block of HPUB and HMSG (nats-io ADR-4):
/// `NATS/1.0[ code[ description]]\r\n` then `Name: value\r\n` per header, then `\r\n`.
/// Its length (the `hdrlen` of HPUB/HMSG) includes the final blank line.
///
/// Checking and reading a received block allocates nothing; only `NATSMessage.headers` builds
/// strings.
enum NATSHeaderBlock {
    static let version: [UInt8] = Array("NATS/1.0".utf8)
    /// `NATS/1.0\r\n\r\n`: the shortest block.
    static let minimumLength = 12

    /// Checks a received block; returns the status code of its status line, if it has one.
    static func validate(_ block: UnsafeRawBufferPointer) -> Result<Int?, NATSProtocolError> {
        guard block.count >= minimumLength else { return .failure(.malformedHeaders("\(block.count) bytes is shorter than NATS/1.0 CR LF CR LF")) }
        guard block.starts(with: version) else { return .failure(.malformedHeaders("does not start with NATS/1.0")) }
        guard block[block.count - 4] == 13, block[block.count - 3] == 10, block[block.count - 2] == 13, block[block.count - 1] == 10 else {
            return .failure(.malformedHeaders("does not end with a blank line"))
        }
        guard let statusEnd = lineEnd(block, from: 0) else { return .failure(.malformedHeaders("bare CR or LF in the status line")) }
        var status: Int?
        if statusEnd > version.count {
            // " 503" or " 100 Idle Heartbeat": whitespace, three digits, optionally whitespace and text.
            var index = version.count
            guard isSpace(block[index]) else { return .failure(.malformedHeaders("no space after NATS/1.0")) }
            while index < statusEnd, isSpace(block[index]) { index += 1 }
            var code = 0
            var digits = 0
            while index < statusEnd, block[index] >= 0x30, block[index] <= 0x39 {
                code = code * 10 + Int(block[index] - 0x30)
                digits += 1
                index += 1
            }
            guard digits == 3, index == statusEnd || isSpace(block[index]) else { return .failure(.malformedHeaders("status is not three digits")) }
            status = code
        }
        var position = statusEnd + 2
        while position < block.count - 2 {
            guard let end = lineEnd(block, from: position) else { return .failure(.malformedHeaders("bare CR or LF in a header line")) }
            guard end > position else { return .failure(.malformedHeaders("blank line before the end of the block")) }
            guard let colon = UnsafeRawBufferPointer(rebasing: block[position..<end]).firstIndex(of: UInt8(ascii: ":")).map({ position + $0 }),
                  colon > position else {
                return .failure(.malformedHeaders("a header line has no name or no colon"))
            }
            for index in position..<colon where !isNameByte(block[index]) {
                return .failure(.malformedHeaders("a header name has a space or control byte"))
            }
            position = end + 2
        }
        return .success(status)
    }

    /// The status line of a valid block, without its CR LF.
    static func statusLine(_ block: UnsafeRawBufferPointer) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(rebasing: block[..<(lineEnd(block, from: 0) ?? 0)])
    }

    /// Calls `body` with the name and the trimmed value of each header of a valid block, in order.
    static func forEachField(_ block: UnsafeRawBufferPointer, _ body: (UnsafeRawBufferPointer, UnsafeRawBufferPointer) -> Void) {
        guard var position = lineEnd(block, from: 0).map({ $0 + 2 }) else { return }
        while position < block.count - 2, let end = lineEnd(block, from: position), end > position {
            let line = UnsafeRawBufferPointer(rebasing: block[position..<end])
            if let colon = line.firstIndex(of: UInt8(ascii: ":")) {
                var start = colon + 1
                var stop = line.count
                while start < stop, isSpace(line[start]) { start += 1 }
                while stop > start, isSpace(line[stop - 1]) { stop -= 1 }
                body(UnsafeRawBufferPointer(rebasing: line[..<colon]), UnsafeRawBufferPointer(rebasing: line[start..<stop]))
            }
            position = end + 2
        }
    }

    static func equalIgnoringASCIICase(_ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer) -> Bool {
        guard a.count == b.count else { return false }
        for index in 0..<a.count where lowercased(a[index]) != lowercased(b[index]) { return false }
        return true
    }

    // MARK: Encoding (HPUB)

    /// Checks headers before anything is written: names of visible ASCII without `:`, values
    /// without CR or LF. Returns the block's length (`hdrlen`).
    static func encodedLength(_ headers: [(name: String, value: String)]) throws(NATSProtocolError) -> Int {
        var length = version.count + 2 + 2
        for (name, value) in headers {
            guard !name.isEmpty else { throw .invalidHeader(name, reason: "empty name") }
            guard name.utf8.allSatisfy(isNameByte) else { throw .invalidHeader(name, reason: "names are visible ASCII without ':'") }
            guard !value.utf8.contains(13), !value.utf8.contains(10) else { throw .invalidHeader(name, reason: "value contains CR or LF") }
            length += name.utf8.count + 2 + value.utf8.count + 2
        }
        return length
    }

    /// Appends the block for `headers` (already checked by `encodedLength`).
    static func append(_ headers: [(name: String, value: String)], to output: inout [UInt8]) {
        output.append(contentsOf: version)
        output.append(13)
        output.append(10)
        for (name, value) in headers {
            output.append(contentsOf: name.utf8)
            output.append(UInt8(ascii: ":"))
            output.append(UInt8(ascii: " "))
            output.append(contentsOf: value.utf8)
            output.append(13)
            output.append(10)
        }
        output.append(13)
        output.append(10)
    }

    // MARK: Bytes

    /// The index of the CR of the CR LF ending the line at `start`; nil if a bare CR or LF
    /// comes first or the block ends.
    private static func lineEnd(_ block: UnsafeRawBufferPointer, from start: Int) -> Int? {
        var index = start
        while index < block.count {
            switch block[index] {
            case 13: return index + 1 < block.count && block[index + 1] == 10 ? index : nil
            case 10: return nil
            default: index += 1
            }
        }
        return nil
    }

    static func isSpace(_ byte: UInt8) -> Bool { byte == 0x20 || byte == 0x09 }

    /// A byte allowed in a header name: visible ASCII except `:` (RFC 9110 field names are
    /// narrower; nats-server accepts these).
    static func isNameByte(_ byte: UInt8) -> Bool { byte > 0x20 && byte < 0x7F && byte != UInt8(ascii: ":") }

    private static func lowercased(_ byte: UInt8) -> UInt8 { byte >= 0x41 && byte <= 0x5A ? byte + 0x20 : byte }
}
