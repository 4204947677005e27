/// Why a NATS byte stream could not be parsed, or a command could not be encoded.
///
/// Parse errors mean the connection is out of step with the server and must be closed (and
/// reconnected); encode errors mean nothing was written and the connection is still usable.
package enum NATSProtocolError: Error, Equatable, Sendable, CustomStringConvertible {
    /// No CR LF within the control line cap (nats-server's `max_control_line`, 4096).
    case controlLineTooLong(limit: Int)
    /// A line ended with a bare LF (the protocol requires CR LF).
    case missingCarriageReturn
    /// An operation the client side of the protocol does not know (at most 32 bytes of it).
    case unknownOperation(String)
    /// The arguments of an operation do not fit its grammar (the line, at most 256 bytes).
    case malformedArguments(operation: String, line: String)
    /// A MSG or HMSG announced a payload over the server's `max_payload`.
    case payloadTooLarge(size: Int, limit: Int)
    /// The bytes after a payload were not CR LF: the announced length was wrong.
    case missingPayloadTerminator
    /// An HMSG header block that is not `NATS/1.0[ status[ description]]\r\n(Name: value\r\n)*\r\n`.
    case malformedHeaders(String)
    /// INFO's JSON did not decode (the decoder's message).
    case invalidInfo(String)
    /// A subject (or queue group, or reply subject) refused before it was sent, and why.
    case invalidSubject(String, reason: String)
    /// A header name or value refused before it was sent, and why.
    case invalidHeader(String, reason: String)
    /// CONNECT options that nats-server would refuse.
    case invalidConnectOptions(String)

    package var description: String {
        switch self {
        case .controlLineTooLong(let limit): return "NATS control line longer than \(limit) bytes"
        case .missingCarriageReturn: return "NATS line ended with LF alone (CR LF expected)"
        case .unknownOperation(let operation): return "unknown NATS operation \(operation.debugDescription)"
        case .malformedArguments(let operation, let line): return "malformed \(operation) arguments: \(line.debugDescription)"
        case .payloadTooLarge(let size, let limit): return "NATS payload of \(size) bytes exceeds max_payload \(limit)"
        case .missingPayloadTerminator: return "NATS payload not followed by CR LF (wrong length?)"
        case .malformedHeaders(let why): return "malformed NATS headers: \(why)"
        case .invalidInfo(let why): return "NATS INFO did not decode: \(why)"
        case .invalidSubject(let subject, let reason): return "invalid NATS subject \(subject.debugDescription): \(reason)"
        case .invalidHeader(let header, let reason): return "invalid NATS header \(header.debugDescription): \(reason)"
        case .invalidConnectOptions(let why): return "invalid CONNECT options: \(why)"
        }
    }
}
