/// Encoders for the commands a client sends, appending to a caller's output buffer.
///
/// Every subject, queue group and header is checked first and nothing is appended when one is
/// refused (`NATSProtocolError`): nats-server does not reject everything that is wrong, it may
/// misread it instead (`PUB bad subject 1` is taken as subject `bad`, reply-to `subject`).
/// PUB and HPUB write straight from the caller's bytes: no intermediate string or array.
///
/// Wire forms (nats-io/nats.docs, reference/nats-protocol/nats-protocol), every line ending in
/// CR LF:
/// - `CONNECT {json}`
/// - `PUB <subject> [reply-to] <#bytes>\r\n<payload>\r\n`
/// - `HPUB <subject> [reply-to] <#header bytes> <#total bytes>\r\nNATS/1.0\r\nName: value\r\n\r\n<payload>\r\n`
/// - `SUB <subject> [queue group] <sid>`, `UNSUB <sid> [max-msgs]`, `PING`, `PONG`
package enum NATSCommand {
    /// The version sent in CONNECT.
    package static let clientVersion = "0.1.0"

    /// `CONNECT {...}` with `lang` "swift", `version` `clientVersion` and `protocol` 1 (the
    /// server may send INFO updates). `echo: false` stops the server from delivering this
    /// connection's own publishes back to it; `noResponders` (which needs `headers`) makes a
    /// request to a subject nobody serves come back at once as a `503` status HMSG.
    package static func connect(
        name: String? = nil,
        echo: Bool,
        headers: Bool = true,
        noResponders: Bool = true,
        verbose: Bool = false,
        pedantic: Bool = false,
        into output: inout [UInt8]
    ) throws(NATSProtocolError) {
        if noResponders && !headers { throw .invalidConnectOptions("no_responders needs headers") }
        var json = "{\"verbose\":\(verbose),\"pedantic\":\(pedantic)"
        if let name { json += ",\"name\":" + jsonString(name) }
        json += ",\"lang\":\"swift\",\"version\":\"\(clientVersion)\",\"protocol\":1"
        json += ",\"headers\":\(headers),\"no_responders\":\(noResponders),\"echo\":\(echo)}"
        output.append(contentsOf: "CONNECT ".utf8)
        output.append(contentsOf: json.utf8)
        output.append(13)
        output.append(10)
    }

    // MARK: PUB

    /// `PUB <subject> [reply-to] <#bytes>`, then the payload. Subjects must be literal (no
    /// `*` or `>` token).
    package static func publish(subject: UnsafeRawBufferPointer, replyTo: UnsafeRawBufferPointer? = nil, payload: UnsafeRawBufferPointer, into output: inout [UInt8]) throws(NATSProtocolError) {
        try checkLiteral(subject)
        if let replyTo { try checkLiteral(replyTo) }
        output.reserveCapacity(output.count + subject.count + (replyTo?.count ?? 0) + payload.count + 32)
        output.append(contentsOf: "PUB ".utf8)
        output.append(contentsOf: subject)
        if let replyTo {
            output.append(0x20)
            output.append(contentsOf: replyTo)
        }
        output.append(0x20)
        appendDecimal(payload.count, to: &output)
        output.append(13)
        output.append(10)
        output.append(contentsOf: payload)
        output.append(13)
        output.append(10)
    }

    /// The relay path's PUB, written in parts so that a payload made of pieces (an envelope
    /// header, then a frame's bytes) needs no intermediate buffer: `PUB <subject> <#bytes>\r\n`
    /// here, the caller appends exactly `payloadSize` bytes, then `endPayload`. The subject is
    /// not checked: the caller checked it once when it made it (`ClusterRoom`).
    @inline(__always)
    package static func publishLine(checkedSubject subject: [UInt8], payloadSize: Int, into output: inout [UInt8]) {
        output.append(contentsOf: "PUB ".utf8)
        output.append(contentsOf: subject)
        output.append(0x20)
        appendDecimal(payloadSize, to: &output)
        output.append(13)
        output.append(10)
    }

    /// Ends a payload begun with `publishLine`.
    @inline(__always)
    package static func endPayload(into output: inout [UInt8]) {
        output.append(13)
        output.append(10)
    }

    package static func publish(subject: [UInt8], replyTo: [UInt8]? = nil, payload: UnsafeRawBufferPointer, into output: inout [UInt8]) throws(NATSProtocolError) {
        try withBytes(subject, replyTo) { subject, replyTo throws(NATSProtocolError) in
            try publish(subject: subject, replyTo: replyTo, payload: payload, into: &output)
        }
    }

    package static func publish(subject: String, replyTo: String? = nil, payload: UnsafeRawBufferPointer, into output: inout [UInt8]) throws(NATSProtocolError) {
        try withBytes(subject, replyTo) { subject, replyTo throws(NATSProtocolError) in
            try publish(subject: subject, replyTo: replyTo, payload: payload, into: &output)
        }
    }

    // MARK: HPUB

    /// `HPUB <subject> [reply-to] <#header bytes> <#total bytes>`, then the header block and the
    /// payload. `hdrlen` counts the block through its blank line; total = hdrlen + payload.
    /// Header names are visible ASCII without `:`, values have no CR or LF; order and repeats
    /// are kept.
    package static func publish(subject: UnsafeRawBufferPointer, replyTo: UnsafeRawBufferPointer? = nil, headers: [(name: String, value: String)], payload: UnsafeRawBufferPointer, into output: inout [UInt8]) throws(NATSProtocolError) {
        try checkLiteral(subject)
        if let replyTo { try checkLiteral(replyTo) }
        let headerLength = try NATSHeaderBlock.encodedLength(headers)
        output.reserveCapacity(output.count + subject.count + (replyTo?.count ?? 0) + headerLength + payload.count + 48)
        output.append(contentsOf: "HPUB ".utf8)
        output.append(contentsOf: subject)
        if let replyTo {
            output.append(0x20)
            output.append(contentsOf: replyTo)
        }
        output.append(0x20)
        appendDecimal(headerLength, to: &output)
        output.append(0x20)
        appendDecimal(headerLength + payload.count, to: &output)
        output.append(13)
        output.append(10)
        NATSHeaderBlock.append(headers, to: &output)
        output.append(contentsOf: payload)
        output.append(13)
        output.append(10)
    }

    package static func publish(subject: [UInt8], replyTo: [UInt8]? = nil, headers: [(name: String, value: String)], payload: UnsafeRawBufferPointer, into output: inout [UInt8]) throws(NATSProtocolError) {
        try withBytes(subject, replyTo) { subject, replyTo throws(NATSProtocolError) in
            try publish(subject: subject, replyTo: replyTo, headers: headers, payload: payload, into: &output)
        }
    }

    package static func publish(subject: String, replyTo: String? = nil, headers: [(name: String, value: String)], payload: UnsafeRawBufferPointer, into output: inout [UInt8]) throws(NATSProtocolError) {
        try withBytes(subject, replyTo) { subject, replyTo throws(NATSProtocolError) in
            try publish(subject: subject, replyTo: replyTo, headers: headers, payload: payload, into: &output)
        }
    }

    // MARK: SUB, UNSUB, PING, PONG

    /// `SUB <subject> [queue group] <sid>`. The subject may hold wildcards (`*` tokens, a final
    /// `>`); `sid` is this connection's name for the subscription, echoed in every MSG.
    package static func subscribe(subject: String, queue: String? = nil, sid: UInt64, into output: inout [UInt8]) throws(NATSProtocolError) {
        if let reason = NATSSubject.problem(subject, wildcards: true) { throw .invalidSubject(subject, reason: reason) }
        if let queue, let reason = NATSSubject.queueGroupProblem(queue) { throw .invalidSubject(queue, reason: reason) }
        output.append(contentsOf: "SUB ".utf8)
        output.append(contentsOf: subject.utf8)
        if let queue {
            output.append(0x20)
            output.append(contentsOf: queue.utf8)
        }
        output.append(0x20)
        appendDecimal(sid, to: &output)
        output.append(13)
        output.append(10)
    }

    /// `UNSUB <sid> [max-msgs]`: ends the subscription now, or once it has delivered `max`
    /// messages in all (counting those already delivered).
    package static func unsubscribe(sid: UInt64, max: UInt64? = nil, into output: inout [UInt8]) {
        output.append(contentsOf: "UNSUB ".utf8)
        appendDecimal(sid, to: &output)
        if let max {
            output.append(0x20)
            appendDecimal(max, to: &output)
        }
        output.append(13)
        output.append(10)
    }

    package static func ping(into output: inout [UInt8]) {
        output.append(contentsOf: "PING\r\n".utf8)
    }

    package static func pong(into output: inout [UInt8]) {
        output.append(contentsOf: "PONG\r\n".utf8)
    }

    // MARK: Helpers

    private static func checkLiteral(_ subject: UnsafeRawBufferPointer) throws(NATSProtocolError) {
        if let reason = NATSSubject.problem(subject, wildcards: false) {
            throw .invalidSubject(String(decoding: subject, as: UTF8.self), reason: reason)
        }
    }

    /// Appends `value` in decimal ASCII without going through a string.
    static func appendDecimal(_ value: some BinaryInteger, to output: inout [UInt8]) {
        var value = UInt64(value)
        var digits: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8,
                     UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) =
            (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        var count = 0
        withUnsafeMutableBytes(of: &digits) { buffer in
            repeat {
                buffer[19 - count] = UInt8(truncatingIfNeeded: value % 10) + 0x30
                value /= 10
                count += 1
            } while value > 0
            output.append(contentsOf: UnsafeRawBufferPointer(rebasing: buffer[(20 - count)...]))
        }
    }

    /// A JSON string literal for `text` (RFC 8259 §7 escapes).
    static func jsonString(_ text: String) -> String {
        var result = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": result += "\\\""
            case "\\": result += "\\\\"
            case "\n": result += "\\n"
            case "\r": result += "\\r"
            case "\t": result += "\\t"
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                result += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: result.unicodeScalars.append(scalar)
            }
        }
        return result + "\""
    }

    /// Runs `body` with the bytes of a subject and optional reply subject, without copying.
    private static func withBytes(_ subject: [UInt8], _ replyTo: [UInt8]?, _ body: (UnsafeRawBufferPointer, UnsafeRawBufferPointer?) throws(NATSProtocolError) -> Void) throws(NATSProtocolError) {
        let result = subject.withUnsafeBytes { subject in
            guard let replyTo else { return Result { () throws(NATSProtocolError) in try body(subject, nil) } }
            return replyTo.withUnsafeBytes { replyTo in Result { () throws(NATSProtocolError) in try body(subject, replyTo) } }
        }
        try result.get()
    }

    private static func withBytes(_ subject: String, _ replyTo: String?, _ body: (UnsafeRawBufferPointer, UnsafeRawBufferPointer?) throws(NATSProtocolError) -> Void) throws(NATSProtocolError) {
        var subject = subject
        var replyTo = replyTo
        let result = subject.withUTF8 { subject in
            guard replyTo != nil else { return Result { () throws(NATSProtocolError) in try body(UnsafeRawBufferPointer(subject), nil) } }
            return replyTo!.withUTF8 { replyTo in
                Result { () throws(NATSProtocolError) in try body(UnsafeRawBufferPointer(subject), UnsafeRawBufferPointer(replyTo)) }
            }
        }
        try result.get()
    }
}
