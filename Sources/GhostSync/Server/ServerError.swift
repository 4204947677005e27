#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Errors from starting a server or managing rooms.
public enum ServerError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The bind address does not parse or resolve.
    case invalidAddress(AddressError)
    /// An option is out of range; the text says which.
    case invalidConfiguration(String)
    /// The listening socket could not be bound.
    case bindFailed(address: String, SystemError)
    /// A system call failed while starting (epoll, eventfd, thread creation, pinning).
    case startFailed(SystemError)
    /// `createRoom` for an ID that exists.
    case roomAlreadyExists(String)
    /// A server-side message for a room that does not exist.
    case roomNotFound(String)
    /// A server-side message or disconnect for a client that is not connected.
    case clientNotFound(UUID)
    /// A server-side message larger than the clients' limit (`maxPayload` less the 12 bytes a
    /// client's own Broadcast frame needs), so that it reaches clients configured like the server.
    case messageTooLarge(length: Int, limit: Int)
    /// In a cluster: the room registry (NATS with JetStream) did not answer, or the relay could
    /// not load it at start; the text says why. Nothing was changed.
    case clusterUnavailable(String)

    public var description: String {
        switch self {
        case .invalidAddress(let error): return error.description
        case .invalidConfiguration(let text): return "invalid configuration: \(text)"
        case .bindFailed(let address, let error):
            if error.errno == 98 { return "cannot listen on \(address): the port is in use (another relay running?)" }
            if error.errno == 99 { return "cannot listen on \(address): no such local address" }
            if error.errno == 13 { return "cannot listen on \(address): permission denied (ports below 1024 need privileges)" }
            return "cannot listen on \(address): \(error)"
        case .startFailed(let error): return "cannot start the server: \(error)"
        case .roomAlreadyExists(let roomID): return "room already exists: \(roomID)"
        case .roomNotFound(let roomID): return "room not found: \(roomID)"
        case .clientNotFound(let clientID): return "client not found: \(clientID)"
        case .messageTooLarge(let length, let limit): return "message of \(length) bytes exceeds the limit of \(limit) bytes"
        case .clusterUnavailable(let why): return "cluster registry unavailable: \(why)"
        }
    }
}
