#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The embedding server's policy hooks. Every method has a no-op default.
///
/// Threading: connection hooks (`onConnect`, `onJoin`, `onLeave`, `onBroadcast`,
/// `onBackpressure`, `onDisconnect`) run synchronously on the worker thread that owns the
/// connection (for `onJoin`, the worker the client is on when it asks; for the others, the
/// worker of its room). They hold up that worker's whole shard while they run: keep them fast,
/// and never block in them. They may call any `ServerHandle` method. `onJoined`,
/// `onJoinFailed` and the `broadcastFilter` run on the room's worker. `onRoomCreate` and
/// `onRoomDelete` run on the thread that called `createRoom`/`deleteRoom` (in a cluster, for a
/// change made on another relay, on this relay's registry thread, where they must not create,
/// delete or annotate rooms themselves); `onShutdown` on the
/// task that awaited `shutdown()`, after every worker has stopped (a connection stranded between
/// workers by the shutdown gets its `onJoinFailed`/`onDisconnect` there, before `onShutdown`).
public protocol ServerHandler: Sendable {
    /// A TCP connection arrived. Return false to close it at once (before any per-client state
    /// exists). Called by the default `onConnect(_: ConnectingClient)`.
    func onConnect(_ address: SocketAddress) -> Bool
    /// A TCP connection arrived, with the client ID it will get; attach metadata with
    /// `client.setMeta(_:)`. Return false to close it at once. The default calls
    /// `onConnect(client.address)`: implement one or the other.
    func onConnect(_ client: ConnectingClient) -> Bool
    /// A client asks to join an existing room. Return false to answer `Error("join rejected")`.
    func onJoin(clientID: UUID, roomID: String, address: SocketAddress) -> Bool
    /// A join completed on the room's worker: the client is a member, got `Joined`, and the
    /// others got `PlayerJoined`.
    func onJoined(clientID: UUID, roomID: String)
    /// A join that `onJoin` allowed did not complete: the client got `Error` and is in no room
    /// (it had left its previous one).
    func onJoinFailed(clientID: UUID, roomID: String, reason: JoinFailure)
    /// Decides whether each client broadcast is relayed, before the fan-out; nil (the default)
    /// relays everything and costs the relay path nothing. Read once when the server starts.
    var broadcastFilter: BroadcastFilter? { get }
    /// A client left a room, by request, by joining another, or by disconnecting.
    func onLeave(clientID: UUID, roomID: String)
    /// A broadcast was relayed to the room. `data` is valid only during the call.
    func onBroadcast(clientID: UUID, roomID: String, data: UnsafeRawBufferPointer)
    /// A frame for this client was dropped because its queue held `channelCapacity` frames.
    /// `roomID` is empty when the client is in no room.
    func onBackpressure(clientID: UUID, roomID: String)
    /// A room was created.
    func onRoomCreate(_ roomID: String)
    /// A room was deleted.
    func onRoomDelete(_ roomID: String)
    /// A client's connection ended, with the reason. Runs after `onLeave`.
    func onDisconnect(clientID: UUID, address: SocketAddress, reason: DisconnectReason)
    /// The server stopped.
    func onShutdown()
    /// A worker's event loop failed and its shard is out of service (see `WorkerFailure`).
    /// Runs on that worker's thread, after its connections were closed.
    func onWorkerFailed(_ worker: Int, reason: String)
    /// In a cluster: a worker's NATS connection came up (`reason` nil) or went down (with why).
    /// Runs on that worker's thread. Members stay connected either way (docs/cluster.md).
    func onClusterLinkChanged(worker: Int, isUp: Bool, reason: String?)
}

extension ServerHandler {
    public func onConnect(_ address: SocketAddress) -> Bool { true }
    public func onConnect(_ client: ConnectingClient) -> Bool { onConnect(client.address) }
    public func onJoined(clientID: UUID, roomID: String) {}
    public func onJoinFailed(clientID: UUID, roomID: String, reason: JoinFailure) {}
    public var broadcastFilter: BroadcastFilter? { nil }
    public func onJoin(clientID: UUID, roomID: String, address: SocketAddress) -> Bool { true }
    public func onLeave(clientID: UUID, roomID: String) {}
    public func onBroadcast(clientID: UUID, roomID: String, data: UnsafeRawBufferPointer) {}
    public func onBackpressure(clientID: UUID, roomID: String) {}
    public func onRoomCreate(_ roomID: String) {}
    public func onRoomDelete(_ roomID: String) {}
    public func onDisconnect(clientID: UUID, address: SocketAddress, reason: DisconnectReason) {}
    public func onShutdown() {}
    public func onWorkerFailed(_ worker: Int, reason: String) {}
    public func onClusterLinkChanged(worker: Int, isUp: Bool, reason: String?) {}
}

/// The handler used when none is set: accepts everything, does nothing.
public struct NoopHandler: ServerHandler {
    public init() {}
}
