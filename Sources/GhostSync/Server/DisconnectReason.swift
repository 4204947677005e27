/// Why the server closed (or lost) a client connection.
public enum DisconnectReason: Equatable, Sendable, CustomStringConvertible {
    /// No complete frame from the client for `idleTimeout`.
    case idleTimeout
    /// The client had not answered the previous `Ping` by the next ping tick.
    case pingTimeout
    /// The client closed the connection cleanly, or the server shut down.
    case connectionClosed
    /// The connection broke (reset by the peer, or an I/O error).
    case connectionReset
    /// The client announced a frame larger than `maxPayload`.
    case payloadTooLarge
    /// The client sent a frame that does not decode; the text says how.
    case `protocol`(String)
    /// The client sent more than `maxFramesPerSecond` frames in a second.
    case rateLimited
    /// The server closed it on purpose (`ServerHandle.disconnect(clientID:reason:)`, the
    /// control protocol's `KICK`); the text is the reason given.
    case kicked(String)

    public var description: String {
        switch self {
        case .idleTimeout: return "idle timeout"
        case .pingTimeout: return "ping timeout"
        case .connectionClosed: return "connection closed"
        case .connectionReset: return "connection reset"
        case .payloadTooLarge: return "payload too large"
        case .protocol(let reason): return "protocol error: \(reason)"
        case .rateLimited: return "rate limited (too many frames per second)"
        case .kicked(let reason): return reason.isEmpty ? "kicked" : "kicked: \(reason)"
        }
    }
}
