import Glibc

/// Why a client operation failed.
public enum SyncError: Error, Equatable, Sendable, CustomStringConvertible {
    /// Nothing accepted the connection; the message says where and what to check.
    case connectionRefused(String)
    /// The server sent a frame over this client's `maxPayload`.
    case payloadTooLarge(length: Int, limit: Int)
    /// A message to send does not fit a frame (its payload would pass the 4-byte length prefix).
    case messageTooLarge(length: Int, limit: Int)
    /// The server sent bytes that do not decode.
    case `protocol`(String)
    /// The connection broke (reset by the server, or already closed by this client).
    case connectionReset
    /// A system call failed with this errno.
    case io(Int32)
    /// The relay refused a join (`Client.join`); the text is its Error (`room not found: R`).
    case joinRefused(String)
    /// No answer within the time allowed; the text says what was awaited.
    case timedOut(String)
    /// The address does not parse or resolve.
    case invalidAddress(String)

    public var description: String {
        switch self {
        case .connectionRefused(let message): return message
        case .payloadTooLarge(let length, let limit): return "server frame of \(length) bytes exceeds this client's limit of \(limit) bytes"
        case .messageTooLarge(let length, let limit): return "a message of \(length) bytes does not fit a frame (at most \(limit) bytes)"
        case .protocol(let text): return "protocol error: \(text)"
        case .connectionReset: return "connection reset"
        case .io(let code): return "I/O error: \(String(cString: strerror(code))) (errno \(code))"
        case .invalidAddress(let text): return text
        case .joinRefused(let text): return "join refused: \(text)"
        case .timedOut(let what): return "timed out waiting for \(what)"
        }
    }
}
