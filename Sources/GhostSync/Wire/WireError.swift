/// Why a frame or payload could not be decoded. Each case closes only the offending connection.
public enum WireError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The length prefix announced more than the receiver's `maxPayload`.
    case payloadTooLarge(length: Int, limit: Int)
    /// A zero-length frame: it cannot hold the 4-byte tag.
    case emptyPayload
    /// The payload ended before the field being read.
    case truncated
    /// The payload has bytes left over after the message's last field.
    case trailingBytes(Int)
    /// The enum tag names no message of this direction.
    case unknownTag(UInt32)
    /// A string field is not valid UTF-8.
    case invalidUTF8

    public var description: String {
        switch self {
        case .payloadTooLarge(let length, let limit):
            return "frame of \(length) bytes exceeds the limit of \(limit) bytes"
        case .emptyPayload: return "empty frame (no message tag)"
        case .truncated: return "payload truncated"
        case .trailingBytes(let count): return "\(count) trailing bytes after the message"
        case .unknownTag(let tag): return "unknown message tag \(tag)"
        case .invalidUTF8: return "string is not valid UTF-8"
        }
    }
}
