#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Glibc
import Synchronization

/// Controls a running server: rooms, metadata, queries, shutdown.
///
/// `Sendable`; every method may be called from any thread, including from inside a
/// `ServerHandler` hook running on a worker, without deadlock: queries read the cross-thread
/// room and client directories (short locks, never held while a hook runs) and never wait for
/// a worker. Keep a copy in your handler (the guide's max-players example).
public final class ServerHandle: Sendable {
    let core: ServerCore
    private let threads: [pthread_t]
    private let stopped: CompletionLatch
    private let shutdownState = Locked<ShutdownState>(.running)

    private enum ShutdownState {
        case running
        case stopping([CheckedContinuation<Bool, Never>])
        case stopped
    }

    init(core: ServerCore, threads: [pthread_t], stopped: CompletionLatch) {
        self.core = core
        self.threads = threads
        self.stopped = stopped
    }

    /// The address the server listens on (with the real port when bound to port 0).
    public var localAddress: SocketAddress { core.localAddress }
    /// The address the WebSocket listeners are bound to (the port picked when bound to port 0),
    /// or nil when the WebSocket transport is off.
    public var webSocketAddress: SocketAddress? { core.webSocketAddress }

    /// The other relays of the cluster that are alive, as the workers last saw them (each
    /// worker hears every heartbeat), with their member counts; empty without a cluster.
    public var clusterNodes: [ClusterNodeStatus] {
        var latest: [String: ClusterNodeStatus] = [:]
        for view in core.clusterViews {
            for peer in view.withLock({ $0 })?.peers ?? [] where (latest[peer.name]?.lastHeard ?? .min) < peer.lastHeard {
                latest[peer.name] = peer
            }
        }
        return latest.values.sorted { $0.name < $1.name }
    }

    /// How many workers have their NATS connection up (each worker has one); nil without a cluster.
    public var clusterLinksUp: Int? {
        guard core.clusterNode != nil else { return nil }
        return core.clusterViews.count { $0.withLock { $0 }?.connected == true }
    }

    /// Members of this relay's rooms that are on other relays, as far as this relay knows
    /// (docs/cluster.md: it tracks them for the rooms it has members in).
    public var remoteMemberCount: Int {
        core.rooms.allRecords.reduce(0) { $0 + $1.state.withLock { $0.remoteMembers.count } }
    }

    /// This relay's name in the cluster, or nil.
    public var clusterNodeName: String? { core.clusterNode?.name }

    /// In a cluster with the room registry: whether it is connected and up to date (room
    /// changes are possible); nil without one.
    public var clusterRegistryReady: Bool? { core.registry?.isReady.load(ordering: .acquiring) }

    /// In a cluster with the room registry: the last problem it met (kept after recovery), for
    /// logs and `admin nodes`.
    public var clusterRegistryLastError: String? { core.registry?.lastError }

    /// Workers, their CPUs and NUMA nodes.
    public var topology: ServerTopology { core.topology }

    /// The worker (shard) that owns `roomID`: `fmix64(FNV-1a-64(UTF-8 bytes))`, reduced to the
    /// worker count by a multiply-high (docs/architecture.md, invariant 10). Stable across runs.
    public func shard(of roomID: String) -> Int { core.shardMap.shard(of: roomID) }

    /// Each worker's counters (index = worker), as of its latest loop iteration. Sum them for
    /// server totals; per-worker values show how evenly the shards are loaded.
    public var workerStatistics: [WorkerStatistics] { core.statistics.map { $0.snapshot() } }

    /// Workers whose event loop failed (empty while the server is healthy). Joins to their
    /// shards are refused; restart the process to recover them. See `WorkerFailure`.
    public var failedWorkers: [WorkerFailure] { core.failedWorkers }

    /// Tests only: makes worker `index`'s event loop fail for real.
    package func injectWorkerFailure(_ index: Int) {
        core.mailboxes[index].post(.failForTesting)
    }

    // MARK: Rooms

    /// Creates a room; joins to it work as soon as this returns.
    /// Throws `ServerError.roomAlreadyExists` if the ID is taken.
    ///
    /// In a cluster (docs/cluster.md) the room is created in the registry, atomically: it is
    /// refused if it exists on any relay, and joinable on every relay as soon as each hears of
    /// it (one NATS hop). This waits for the registry (at most `registryTimeout`) and throws
    /// `ServerError.clusterUnavailable` if it does not answer.
    public func createRoom(_ roomID: String) throws(ServerError) {
        guard let registry = core.registry else {
            guard core.rooms.create(roomID) != nil else { throw .roomAlreadyExists(roomID) }
            core.handler.onRoomCreate(roomID)
            return
        }
        try registry.create(roomID)
        core.handler.onRoomCreate(roomID)
    }

    /// Creates the room unless it exists: true if this call created it. For rooms every relay of
    /// a cluster names at start (the relay's `--room`s).
    @discardableResult
    public func ensureRoom(_ roomID: String) throws(ServerError) -> Bool {
        do {
            try createRoom(roomID)
            return true
        } catch .roomAlreadyExists {
            return false
        }
    }

    /// Deletes a room (soft delete: members stay connected; their next broadcast or join there
    /// gets `Error("room not found: ID")`). Returns false if there was no such room, or, in a
    /// cluster, if the registry could not be reached (`removeRoom` tells the two apart).
    @discardableResult
    public func deleteRoom(_ roomID: String) -> Bool {
        do {
            try removeRoom(roomID)
            return true
        } catch {
            return false
        }
    }

    /// Deletes a room as `deleteRoom` does, saying why not: `ServerError.roomNotFound`, or in a
    /// cluster `ServerError.clusterUnavailable`. In a cluster the room ends on every relay.
    public func removeRoom(_ roomID: String) throws(ServerError) {
        guard let registry = core.registry else {
            guard let record = core.rooms.delete(roomID) else { throw .roomNotFound(roomID) }
            core.mailboxes[record.shard].post(.roomDeleted(roomID: roomID, generation: record.generation))
            core.handler.onRoomDelete(roomID)
            return
        }
        guard let record = core.rooms.record(roomID) else { throw .roomNotFound(roomID) }
        try registry.delete(record)
        core.handler.onRoomDelete(roomID)
    }

    public func roomExists(_ roomID: String) -> Bool { core.rooms.record(roomID) != nil }

    public var roomCount: Int { core.rooms.count }

    /// Every room ID, sorted.
    public var roomIDs: [String] { core.rooms.roomIDs }

    /// Members of a room in join order (in a cluster: this relay's, then the others'); nil if
    /// there is no such room. In a cluster, a room with no member on this relay is asked about
    /// (the other relays answer within a round trip; at most 500 ms for one that does not).
    public func roomClients(_ roomID: String) -> [UUID]? {
        guard let record = core.rooms.record(roomID) else { return nil }
        guard let registry = core.registry, record.localMemberCount == 0 else { return record.memberIDs }
        return registry.remoteMembers(of: [roomID])[roomID] ?? []
    }

    public func roomClientCount(_ roomID: String) -> Int? {
        guard let record = core.rooms.record(roomID) else { return nil }
        // A count, not the member list: callers poll it, and the list is built under the
        // lock every join of the room takes.
        guard core.registry != nil, record.localMemberCount == 0 else { return record.memberCount }
        return roomClients(roomID)?.count
    }

    /// Every room and its member count, cluster-wide in a cluster (one query to the other relays
    /// for the rooms with no member here).
    public var roomClientCounts: [String: Int] {
        let records = core.rooms.allRecords
        var counts: [String: Int] = [:]
        var unknown: [String] = []
        for record in records {
            if core.registry != nil && record.localMemberCount == 0 {
                unknown.append(record.id)
            } else {
                counts[record.id] = record.memberCount
            }
        }
        if let registry = core.registry, !unknown.isEmpty {
            // Past a few dozen rooms, asking for all of them is the smaller request.
            let members = registry.remoteMembers(of: unknown.count > 64 ? nil : unknown)
            for roomID in unknown { counts[roomID] = members[roomID]?.count ?? 0 }
        }
        return counts
    }

    /// Frames queued for a member of a room (as of its worker's last flush); nil if the room or
    /// the member is unknown.
    public func clientQueueLength(roomID: String, clientID: UUID) -> Int? {
        core.rooms.record(roomID)?.state.withLock { state in
            state.members.first { $0.id == clientID }?.queueLength.load(ordering: .relaxed)
        }
    }

    /// Frames queued for every member of a room; nil if there is no such room.
    public func roomQueueLengths(_ roomID: String) -> [UUID: Int]? {
        core.rooms.record(roomID)?.state.withLock { state in
            Dictionary(uniqueKeysWithValues: state.members.map { ($0.id, $0.queueLength.load(ordering: .relaxed)) })
        }
    }

    // MARK: Room metadata (string key/value, as in the guide)

    public func roomMeta(_ roomID: String, key: String) -> String? {
        core.rooms.record(roomID)?.state.withLock { $0.metadata[key] }
    }

    /// Sets (or, with nil, removes) a value; false if there is no such room.
    ///
    /// In a cluster the value is kept in the registry: read the same on every relay once it
    /// has heard of it (one NATS hop; on this relay at once). This waits for the registry and
    /// returns false if it does not answer within `registryTimeout`.
    @discardableResult
    public func setRoomMeta(_ roomID: String, key: String, value: String?) -> Bool {
        guard let record = core.rooms.record(roomID) else { return false }
        guard let registry = core.registry else {
            record.state.withLock { $0.metadata[key] = value }
            return true
        }
        return registry.setMetadata(of: record, key: key, value: value)
    }

    public func roomMetaAll(_ roomID: String) -> [String: String]? {
        core.rooms.record(roomID)?.state.withLock { $0.metadata }
    }

    // MARK: Typed metadata on rooms (one value per type)

    /// Stores `value` as the room's `T`; false if there is no such room.
    @discardableResult
    public func setRoomMeta<T: Sendable>(_ roomID: String, _ value: T) -> Bool {
        guard let record = core.rooms.record(roomID) else { return false }
        record.state.withLock { $0.typedMetadata.set(value) }
        return true
    }

    public func roomMeta<T: Sendable>(_ roomID: String, as type: T.Type) -> T? {
        core.rooms.record(roomID)?.state.withLock { $0.typedMetadata.value(as: type) }
    }

    /// Removes and returns the room's `T`.
    public func takeRoomMeta<T: Sendable>(_ roomID: String, as type: T.Type) -> T? {
        core.rooms.record(roomID)?.state.withLock { $0.typedMetadata.take(as: type) }
    }

    public func roomHasMeta<T: Sendable>(_ roomID: String, _ type: T.Type) -> Bool {
        core.rooms.record(roomID)?.state.withLock { $0.typedMetadata.contains(type) } ?? false
    }

    /// Changes the room's `T` in place, atomically; nil if the room or the value is missing.
    /// `body` runs under the room's lock: it must not call back into this handle.
    public func withRoomMeta<T: Sendable, Result: Sendable>(_ roomID: String, as type: T.Type, _ body: (inout T) -> sending Result) -> Result? {
        core.rooms.record(roomID)?.state.withLock { $0.typedMetadata.modify(type, body) } ?? nil
    }

    // MARK: Clients

    /// Open client connections.
    public var clientCount: Int { core.connectionCount.load(ordering: .acquiring) }

    /// The room a client is in; nil if it is in none or unknown.
    public func clientRoom(_ clientID: UUID) -> String? { core.clients.record(clientID)?.roomID }

    public func clientAddress(_ clientID: UUID) -> SocketAddress? { core.clients.record(clientID)?.address }

    /// Stores `value` as the client's `T`; false if there is no such client.
    @discardableResult
    public func setClientMeta<T: Sendable>(_ clientID: UUID, _ value: T) -> Bool {
        guard let record = core.clients.record(clientID) else { return false }
        record.state.withLock { $0.metadata.set(value) }
        return true
    }

    public func clientMeta<T: Sendable>(_ clientID: UUID, as type: T.Type) -> T? {
        core.clients.record(clientID)?.state.withLock { $0.metadata.value(as: type) }
    }

    public func takeClientMeta<T: Sendable>(_ clientID: UUID, as type: T.Type) -> T? {
        core.clients.record(clientID)?.state.withLock { $0.metadata.take(as: type) }
    }

    public func clientHasMeta<T: Sendable>(_ clientID: UUID, _ type: T.Type) -> Bool {
        core.clients.record(clientID)?.state.withLock { $0.metadata.contains(type) } ?? false
    }

    /// Changes the client's `T` in place; `body` must not call back into this handle.
    public func withClientMeta<T: Sendable, Result: Sendable>(_ clientID: UUID, as type: T.Type, _ body: (inout T) -> sending Result) -> Result? {
        core.clients.record(clientID)?.state.withLock { $0.metadata.modify(type, body) } ?? nil
    }

    // MARK: Server-side messages

    /// The sender ID of frames the server itself sends (`broadcast(roomID:data:)`,
    /// `send(clientID:data:)`): the nil UUID, 16 zero bytes. No client ever has it.
    public static let serverID = UUID(uuid: (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0))

    /// The largest `data` a server-side message may carry: what a client's own Broadcast may
    /// carry (`maxPayload` less its 12-byte tag and length), so that every client configured
    /// like the server accepts it.
    public var maxMessageSize: Int { core.configuration.maxPayload - WireSize.tag - 8 }

    /// Sends `data` to every member of `roomID` as a Broadcast from `serverID`. Encoded once
    /// on the room's worker and shared by every member's queue, as a client's broadcast is;
    /// members that are slow lose it like any frame (`onBackpressure`).
    ///
    /// Asynchronous: routed to the room's worker through its mailbox (no lock on the relay
    /// path) and sent on its next loop iteration. Callable from any thread and from hooks.
    /// Members that join after the call do not get it; a room deleted meanwhile gets nothing.
    public func broadcast(roomID: String, data: some Collection<UInt8>) throws(ServerError) {
        guard let record = core.rooms.record(roomID) else { throw .roomNotFound(roomID) }
        let bytes = try checkedMessage(data)
        core.mailboxes[record.shard].post(.serverBroadcast(roomID: roomID, generation: record.generation, data: bytes))
    }

    /// Sends `data` to one client as a Broadcast from `serverID` (whether or not it is in a
    /// room). Asynchronous like `broadcast(roomID:data:)`: routed to the worker that holds the
    /// client (followed if it is moving between workers), in order with other server
    /// messages to it. Callable from any thread and from hooks.
    public func send(clientID: UUID, data: some Collection<UInt8>) throws(ServerError) {
        guard let record = core.clients.record(clientID) else { throw .clientNotFound(clientID) }
        let bytes = try checkedMessage(data)
        post(.send(bytes), to: record)
    }

    /// Closes one client's connection, e.g. for a ban or a failed authentication: it gets
    /// `Error("kicked: REASON")` (if its socket takes it), its room sees `PlayerLeft`, and
    /// `onDisconnect` runs with `.kicked(reason)`. Asynchronous like `send(clientID:data:)`.
    public func disconnect(clientID: UUID, reason: String) throws(ServerError) {
        guard let record = core.clients.record(clientID) else { throw .clientNotFound(clientID) }
        post(.disconnect(reason: reason), to: record)
    }

    private func checkedMessage(_ data: some Collection<UInt8>) throws(ServerError) -> [UInt8] {
        guard data.count <= maxMessageSize else { throw .messageTooLarge(length: data.count, limit: maxMessageSize) }
        return Array(data)
    }

    private func post(_ action: ClientAction, to record: ClientRecord) {
        // A connection in transit names its target already; one that just ended is dropped
        // there. -1 means it has ended: nothing to do.
        let owner = record.owner.load(ordering: .acquiring)
        guard owner >= 0 else { return }
        let sequence = record.nextActionSequence.wrappingAdd(1, ordering: .relaxed).oldValue
        core.mailboxes[owner].post(.toClient(ClientCommand(record: record, sequence: sequence, action: action)))
    }

    // MARK: Shutdown

    /// Stops accepting, closes every client connection cleanly (they see end-of-stream),
    /// stops and joins the worker threads, closes every descriptor, then calls `onShutdown`.
    /// Returns when all of that is done; later and concurrent calls wait for the same.
    public func shutdown() async {
        let first: Bool = await withCheckedContinuation { continuation in
            let action: Bool? = shutdownState.withLock { state in
                switch state {
                case .running:
                    state = .stopping([])
                    return true
                case .stopping(var waiters):
                    waiters.append(continuation)
                    state = .stopping(waiters)
                    return nil
                case .stopped:
                    return false
                }
            }
            if let action { continuation.resume(returning: action) }
        }
        guard first else { return }
        // No room changes from the cluster once the workers start stopping.
        core.registry?.stop()
        for mailbox in core.mailboxes { mailbox.post(.stop) }
        _ = await stopped.wait()
        for thread in threads { pthread_join(thread, nil) }
        // Every worker has stopped: close the mailboxes (discarding stranded handoffs).
        for mailbox in core.mailboxes { mailbox.close() }
        core.handler.onShutdown()
        let waiters: [CheckedContinuation<Bool, Never>] = shutdownState.withLock { state in
            defer { state = .stopped }
            if case .stopping(let waiters) = state { return waiters }
            return []
        }
        for waiter in waiters { waiter.resume(returning: false) }
    }
}
