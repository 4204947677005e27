#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// A connection being admitted, as `ServerHandler.onConnect(_:)` sees it: the client ID it
/// will have, and a place for typed metadata (an auth context, say) before it can send anything.
public struct ConnectingClient: Sendable {
    /// The ID the connection gets if admitted (the one `onJoin`, `Joined` and every later hook
    /// carry).
    public var id: UUID { record.id }
    public var address: SocketAddress { record.address }
    /// How the client connected. A WebSocket client reaches `onConnect` once its upgrade
    /// request has passed every check, just before the 101 answer.
    public let transport: ClientTransport
    let record: ClientRecord

    init(record: ClientRecord, transport: ClientTransport = .tcp) {
        self.record = record
        self.transport = transport
    }

    /// Attaches `value` as the client's `T`, readable with `ServerHandle.clientMeta(_:as:)`
    /// from any hook that follows. Discarded if `onConnect` refuses the connection.
    public func setMeta<T: Sendable>(_ value: T) {
        record.state.withLock { $0.metadata.set(value) }
    }
}

/// What to do with a client's broadcast (`BroadcastFilter`).
public enum BroadcastDecision: Sendable, Equatable {
    /// Relay it to the room (then `onBroadcast` runs).
    case relay
    /// Drop it silently.
    case drop
    /// Drop it and answer the sender `Error(text)`.
    case reject(String)
}

/// Decides, before the fan-out, whether a client's broadcast is relayed (to validate moves,
/// enforce a per-room rate, mute a player). Runs on the room's worker like every hook, once per
/// broadcast, with the bytes valid only during the call.
///
/// Cost: a worker reads its handler's filter once, at start. Without one (the default) the
/// relay path does not call anything: one branch on a worker-local constant.
public struct BroadcastFilter: Sendable {
    let decide: @Sendable (UUID, String, UnsafeRawBufferPointer) -> BroadcastDecision

    public init(_ decide: @escaping @Sendable (_ clientID: UUID, _ roomID: String, _ data: UnsafeRawBufferPointer) -> BroadcastDecision) {
        self.decide = decide
    }
}

/// Why a join that `onJoin` allowed did not complete (`ServerHandler.onJoinFailed`).
public enum JoinFailure: Sendable, Equatable, CustomStringConvertible {
    /// The room was deleted while the client was moving to its worker.
    case roomNotFound
    /// The room had `maxClientsPerRoom` members when the join reached its worker.
    case roomFull
    /// The room's worker stopped (shutdown, or a failed worker) before the join reached it.
    case roomUnavailable

    public var description: String {
        switch self {
        case .roomNotFound: return "room not found"
        case .roomFull: return "room full"
        case .roomUnavailable: return "room unavailable"
        }
    }
}
