#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// What a client hears from the relay. Keepalive (`ping`/`pong`) never shows up here: `recv()`
/// answers and swallows it.
public enum ServerEvent: Equatable, Sendable {
    /// The join succeeded; `clientID` is this connection's ID.
    case joined(clientID: UUID, roomID: String)
    /// Another client joined the room.
    case playerJoined(clientID: UUID)
    /// Another client left the room or disconnected.
    case playerLeft(clientID: UUID)
    /// A request failed (`room not found: R`, `join rejected`, `not in a room`).
    case error(String)
    /// Bytes another member broadcast.
    case broadcast(senderID: UUID, data: [UInt8])
    /// The answer to this client's `echoTest`.
    case echoTest([UInt8])

    init?(_ message: ServerWire) {
        switch message {
        case .joined(let clientID, let roomID): self = .joined(clientID: clientID, roomID: roomID)
        case .playerJoined(let clientID): self = .playerJoined(clientID: clientID)
        case .playerLeft(let clientID): self = .playerLeft(clientID: clientID)
        case .error(let text): self = .error(text)
        case .broadcast(let senderID, let data): self = .broadcast(senderID: senderID, data: data)
        case .echoTest(let data): self = .echoTest(data)
        case .ping, .pong: return nil
        }
    }
}
