import Glibc
import Synchronization

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The cluster's room registry, as the rest of the server sees it (docs/cluster.md): rooms and
/// their string metadata live in a JetStream key-value bucket that every relay watches, so a
/// room created, deleted or annotated on one relay is the same on all of them.
///
/// The registry has its own thread and NATS connection (`RegistryLoop`): it is control traffic,
/// rare and latency-tolerant, and keeping it off the workers means a worker never waits for
/// NATS, and any thread (a hook on a worker included) may block on a registry call without
/// blocking the loop that would answer it. The workers' per-message path does not touch it.
///
/// Callers block until the registry answers (one NATS round trip, at most
/// `ClusterConfiguration.registryTimeout`).
final class RoomRegistry: Sendable {
    let configuration: ClusterConfiguration
    let node: ClusterNodeID
    let wake: EventSignal
    private let queue = Locked<[RegistryRequest]>([])
    private let stopping = Atomic<Bool>(false)
    /// The registry thread, to refuse blocking calls made on it (hooks it runs).
    private let threadID = Atomic<UInt>(0)
    private let thread = Locked<pthread_t?>(nil)
    private let state = Locked<LoadState>(LoadState())
    /// Whether the watch has caught up with the bucket and the connection is up.
    let isReady = Atomic<Bool>(false)

    private struct LoadState {
        var loaded = false
        var failure: String?
        var lastError: String?
        var waiters: [CheckedContinuation<String?, Never>] = []
    }

    init(configuration: ClusterConfiguration, node: ClusterNodeID) throws(SystemError) {
        self.configuration = configuration
        self.node = node
        self.wake = try EventSignal()
    }

    /// Starts the registry thread for `core`.
    func start(core: ServerCore) throws(SystemError) {
        let epoll = try Epoll()
        let started: pthread_t
        do {
            started = try NativeThread.start(name: "ghost-registry") { [self] in
                threadID.store(pthread_self(), ordering: .releasing)
                RegistryLoop(registry: self, core: core, epoll: epoll).run()
            }
        } catch {
            epoll.close()
            throw error
        }
        thread.withLock { $0 = started }
    }

    /// Waits until the registry has loaded the bucket (nil), or could not within
    /// `startupTimeout` (why).
    func waitUntilLoaded() async -> String? {
        await withCheckedContinuation { continuation in
            let done: String?? = state.withLock { state in
                if state.loaded { return .some(nil) }
                if let failure = state.failure { return .some(failure) }
                state.waiters.append(continuation)
                return nil
            }
            if let done { continuation.resume(returning: done) }
        }
    }

    /// From the registry thread: the first load finished (`failure` nil) or gave up.
    func finishedLoading(failure: String?) {
        let waiters = state.withLock { state -> [CheckedContinuation<String?, Never>] in
            if failure == nil { state.loaded = true } else { state.failure = failure }
            defer { state.waiters.removeAll() }
            return state.waiters
        }
        for waiter in waiters { waiter.resume(returning: failure) }
    }

    var lastError: String? {
        get { state.withLock { $0.lastError } }
        set { state.withLock { $0.lastError = newValue } }
    }

    /// Stops the registry thread; requests still queued are answered `.unavailable`.
    func stop() {
        stopping.store(true, ordering: .releasing)
        wake.signal()
        if let started = thread.withLock({ $0.take() }) { pthread_join(started, nil) }
        for request in takeRequests() { request.answer(.unavailable("the server is shutting down")) }
        wake.close()
    }

    var isStopping: Bool { stopping.load(ordering: .acquiring) }

    // MARK: Requests (any thread)

    /// Asks the registry and blocks until it answers.
    private func perform(_ operation: RegistryOperation) -> RegistryOutcome {
        if pthread_self() == threadID.load(ordering: .acquiring) {
            return .unavailable("a room hook run for another relay's change cannot create, delete or annotate rooms (the registry thread would wait for itself)")
        }
        guard !isStopping else { return .unavailable("the server is shutting down") }
        let deadline = MonotonicClock.nowMilliseconds() + configuration.registryTimeout.wholeMilliseconds
        let request = RegistryRequest(operation, deadline: deadline)
        queue.withLock { $0.append(request) }
        wake.signal()
        return request.wait()
    }

    // MARK: What ServerHandle calls

    /// Creates the room in the cluster: `roomAlreadyExists` if any relay has it.
    func create(_ roomID: String) throws(ServerError) {
        switch perform(.create(roomID: roomID)) {
        case .created: return
        case .alreadyExists: throw .roomAlreadyExists(roomID)
        case let other: throw Self.unavailable(other)
        }
    }

    /// Deletes the incarnation `record` of its room on every relay: `roomNotFound` if it is
    /// already gone.
    func delete(_ record: RoomRecord) throws(ServerError) {
        switch perform(.delete(roomID: record.id, revision: record.clusterRevision)) {
        case .deleted: return
        case .notFound: throw .roomNotFound(record.id)
        case let other: throw Self.unavailable(other)
        }
    }

    /// Sets (nil: removes) a string metadata value of `record`'s room; false when the registry
    /// did not answer.
    func setMetadata(of record: RoomRecord, key: String, value: String?) -> Bool {
        perform(.setMetadata(roomID: record.id, revision: record.clusterRevision, key: key, value: value)) == .metadataSet
    }

    /// The members other relays have in `roomIDs` (nil: every room), as far as they answered.
    func remoteMembers(of roomIDs: [String]?) -> [String: [UUID]] {
        guard case .members(let members) = perform(.members(roomIDs: roomIDs)) else { return [:] }
        return members
    }

    private static func unavailable(_ outcome: RegistryOutcome) -> ServerError {
        guard case .unavailable(let why) = outcome else { return .clusterUnavailable("unexpected registry answer: \(outcome)") }
        return .clusterUnavailable(why)
    }

    /// From the registry thread: the requests posted since the last call.
    func takeRequests() -> [RegistryRequest] {
        queue.withLock { queue in
            defer { queue.removeAll() }
            return queue
        }
    }
}
