/// One operation from a NATS server, as `NATSParser` hands them out.
///
/// Not `Sendable`, and valid only during the parser's callback: `.message` points into the
/// parser's input or its buffer. Copy what must outlive the callback.
package enum NATSServerMessage {
    /// `INFO {json}`: first on every connection, and again on topology changes or lame duck mode.
    case info(NATSServerInfo)
    /// `MSG` or `HMSG`.
    case message(NATSMessage)
    /// `PING`: answer with `PONG`, or the server closes the connection as stale.
    case ping
    /// `PONG`: the answer to our `PING`; every command sent before that PING has been processed.
    case pong
    /// `+OK`: only in verbose mode.
    case ok
    /// `-ERR 'text'`: the text without its quotes. Some errors keep the connection
    /// ('Invalid Subject', permissions), most are followed by the server closing it.
    case error(String)
}

/// A delivered message (`MSG` or `HMSG`), pointing into the bytes the parser was fed.
///
/// Every buffer is valid only during the parser's callback. When the whole message was in the
/// caller's read buffer it points there (zero copy); otherwise into the parser's own buffer.
package struct NATSMessage {
    /// The subject the message was published to.
    package let subjectBytes: UnsafeRawBufferPointer
    /// The subscription ID the client gave in `SUB`.
    package let sid: UInt64
    /// The reply subject, when the publisher gave one (requests, JetStream acks, flow control).
    package let replyToBytes: UnsafeRawBufferPointer?
    /// The whole header block of an HMSG, status line and final blank line included; nil for MSG.
    package let headerBytes: UnsafeRawBufferPointer?
    /// The status of an HMSG status line (`NATS/1.0 503`: no responders; `100`: JetStream flow
    /// control or idle heartbeat; `404`, `408`, `409`: pull-request statuses); nil without one.
    package let status: Int?
    /// The message body (headers excluded); may be empty.
    package let payload: UnsafeRawBufferPointer

    package init(subjectBytes: UnsafeRawBufferPointer, sid: UInt64, replyToBytes: UnsafeRawBufferPointer?, headerBytes: UnsafeRawBufferPointer?, status: Int?, payload: UnsafeRawBufferPointer) {
        self.subjectBytes = subjectBytes
        self.sid = sid
        self.replyToBytes = replyToBytes
        self.headerBytes = headerBytes
        self.status = status
        self.payload = payload
    }

    /// The subject as a string (allocates; dispatch on `sid` where it matters).
    package var subject: String { String(decoding: subjectBytes, as: UTF8.self) }

    /// The reply subject as a string, if any.
    package var replyTo: String? { replyToBytes.map { String(decoding: $0, as: UTF8.self) } }

    /// The text after the status code on the status line (`Idle Heartbeat`,
    /// `FlowControl Request`, `No Messages`), if any.
    package var statusDescription: String? {
        guard let headerBytes else { return nil }
        let line = NATSHeaderBlock.statusLine(headerBytes)
        // "NATS/1.0 100 Idle Heartbeat": after the version, the code, then the description.
        var scanner = NATSFieldScanner(line)
        _ = scanner.next()
        _ = scanner.next()
        guard let start = scanner.next()?.lowerBound else { return nil }
        return String(decoding: UnsafeRawBufferPointer(rebasing: line[start...]), as: UTF8.self)
    }

    /// The headers in order, repeats kept, names as sent (not canonicalised), values trimmed
    /// of surrounding spaces and tabs. Empty for MSG.
    package var headers: [(name: String, value: String)] {
        guard let headerBytes else { return [] }
        var result: [(name: String, value: String)] = []
        NATSHeaderBlock.forEachField(headerBytes) { name, value in
            result.append((String(decoding: name, as: UTF8.self), String(decoding: value, as: UTF8.self)))
        }
        return result
    }

    /// Every value of the header `name` (compared ASCII case-insensitively), in order.
    package func values(ofHeader name: String) -> [String] {
        guard let headerBytes else { return [] }
        var result: [String] = []
        var name = name
        name.withUTF8 { wanted in
            NATSHeaderBlock.forEachField(headerBytes) { fieldName, value in
                if NATSHeaderBlock.equalIgnoringASCIICase(fieldName, UnsafeRawBufferPointer(wanted)) {
                    result.append(String(decoding: value, as: UTF8.self))
                }
            }
        }
        return result
    }

    /// The first value of the header `name` (compared ASCII case-insensitively), if any.
    package func value(ofHeader name: String) -> String? { values(ofHeader: name).first }
}
