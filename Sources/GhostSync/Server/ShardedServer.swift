import CGhostSyncShims
import Glibc

/// A room relay server on a thread-per-core engine. Configure it with `builder()`, start it with
/// `run()`, control it through the returned `ServerHandle`.
///
/// ```swift
/// let handle = try await ShardedServer.builder()
///     .bind("127.0.0.1:7777")
///     .handler(MyHandler())
///     .build()
///     .run()
/// try handle.createRoom("lobby")
/// ```
public struct ShardedServer: Sendable {
    public let configuration: ServerConfiguration

    public init(configuration: ServerConfiguration) {
        self.configuration = configuration
    }

    public static func builder() -> ShardedServerBuilder {
        ShardedServerBuilder()
    }

    /// The index of the worker whose thread is calling, or nil off worker threads. Hooks run
    /// on workers, so a handler can keep per-worker state indexed by it and never share it
    /// between cores (the relay's backpressure log does). A thread-local read: no lock.
    public static var currentWorkerIndex: Int? {
        let index = gs_current_worker_index()
        return index >= 0 ? Int(index) : nil
    }

    /// Binds one SO_REUSEPORT listener per worker, starts the pinned worker threads, and returns
    /// once every worker is running. On failure nothing is left open or running.
    public func run() async throws(ServerError) -> ServerHandle {
        let configuration = try configuration.validated()
        let requested: SocketAddress
        do { requested = try SocketAddress(parsing: configuration.bindAddress) } catch { throw .invalidAddress(error) }
        var requestedWebSocket: SocketAddress?
        if let webSocket = configuration.webSocket {
            do { requestedWebSocket = try SocketAddress(parsing: webSocket.bindAddress) } catch { throw .invalidAddress(error) }
        }
        let topology = try MachineTopology.plan(
            workers: configuration.workers, cpus: configuration.cpus,
            pinning: configuration.pinning, numaAware: configuration.numaAware)
        let workerCount = topology.workers.count

        var listeners: [Listener] = []
        var webSocketListeners: [Listener] = []
        var epolls: [Epoll] = []
        var mailboxes: [Mailbox] = []
        func releaseAll() {
            listeners.forEach { $0.close() }
            webSocketListeners.forEach { $0.close() }
            epolls.forEach { $0.close() }
            mailboxes.forEach { $0.close() }
        }
        do {
            for index in 0..<workerCount {
                // Port 0: the first listener picks the port, the others share it.
                let address = index == 0 ? requested : requested.withPort(listeners[0].address.port)
                do {
                    listeners.append(try Listener(bindingTo: address))
                } catch {
                    throw ServerError.bindFailed(address: address.description, error)
                }
                if let requestedWebSocket {
                    let address = index == 0 ? requestedWebSocket : requestedWebSocket.withPort(webSocketListeners[0].address.port)
                    do {
                        webSocketListeners.append(try Listener(bindingTo: address))
                    } catch {
                        throw ServerError.bindFailed(address: address.description, error)
                    }
                }
                epolls.append(try Epoll())
                mailboxes.append(try Mailbox(owner: index, workerCount: workerCount))
            }
        } catch let error as ServerError {
            releaseAll()
            throw error
        } catch let error as SystemError {
            releaseAll()
            throw .startFailed(error)
        } catch {
            releaseAll()
            fatalError("unexpected error \(error)")
        }

        let core: ServerCore
        do {
            core = try ServerCore(
                configuration: configuration, topology: topology,
                localAddress: listeners[0].address, webSocketAddress: webSocketListeners.first?.address, mailboxes: mailboxes)
        } catch {
            releaseAll()
            throw .startFailed(error)
        }
        let started = CompletionLatch(count: workerCount)
        let stopped = CompletionLatch(count: workerCount)
        var threads: [pthread_t] = []
        for index in 0..<workerCount {
            let launch = WorkerLaunch(
                index: index, placement: topology.workers[index], core: core,
                listener: listeners[index], webSocketListener: webSocketListeners.isEmpty ? nil : webSocketListeners[index],
                epoll: epolls[index], started: started, stopped: stopped)
            do {
                threads.append(try WorkerThread.start(launch))
            } catch {
                // Workers already running stop through their mailboxes; the rest are closed here.
                for later in index..<workerCount {
                    listeners[later].close()
                    if !webSocketListeners.isEmpty { webSocketListeners[later].close() }
                    epolls[later].close()
                    started.arrive(nil)
                    stopped.arrive(nil)
                }
                _ = await started.wait()
                let handle = ServerHandle(core: core, threads: threads, stopped: stopped)
                await handle.shutdown()
                throw .startFailed(error)
            }
        }
        let failures = await started.wait()
        let handle = ServerHandle(core: core, threads: threads, stopped: stopped)
        if let failure = failures.first {
            await handle.shutdown()
            throw .startFailed(failure)
        }
        if let registry = core.registry {
            // The relay starts knowing the cluster's rooms (docs/cluster.md), or not at all.
            do {
                try registry.start(core: core)
            } catch {
                await handle.shutdown()
                throw .startFailed(error)
            }
            if let failure = await registry.waitUntilLoaded() {
                await handle.shutdown()
                throw .clusterUnavailable(failure)
            }
        }
        return handle
    }
}

/// Sets a `ShardedServer`'s options; every option has the original ghost-sync's default.
public struct ShardedServerBuilder: Sendable {
    public private(set) var configuration = ServerConfiguration()

    public init() {}

    private func with(_ change: (inout ServerConfiguration) -> Void) -> Self {
        var copy = self
        change(&copy.configuration)
        return copy
    }

    /// Listen address (default `0.0.0.0:7777`); `127.0.0.1:0` picks a free port.
    public func bind(_ address: String) -> Self { with { $0.bindAddress = address } }
    /// Most concurrent connections (default 1024).
    public func maxClients(_ count: Int) -> Self { with { $0.maxClients = count } }
    /// Largest client frame payload in bytes (default 64 KiB).
    public func maxPayload(_ bytes: Int) -> Self { with { $0.maxPayload = bytes } }
    /// Disconnect a client silent for this long (default 31 s).
    public func idleTimeout(_ duration: Duration) -> Self { with { $0.idleTimeout = duration } }
    /// Ping cadence and Pong deadline (default 13 s).
    public func pingInterval(_ duration: Duration) -> Self { with { $0.pingInterval = duration } }
    /// Per-client outgoing queue bound in frames (default 1024).
    public func channelCapacity(_ frames: Int) -> Self { with { $0.channelCapacity = frames } }
    /// Policy hooks (default: `NoopHandler`).
    public func handler(_ handler: some ServerHandler) -> Self { with { $0.handler = handler } }
    /// Worker threads (default: one per CPU of the affinity mask).
    public func workers(_ count: Int) -> Self { with { $0.workers = count } }
    /// CPUs to pin the workers to (default: the affinity mask).
    public func cpus(_ cpus: [Int]) -> Self { with { $0.cpus = cpus } }
    /// Pin workers to CPUs (default on).
    public func pinning(_ enabled: Bool) -> Self { with { $0.pinning = enabled } }
    /// NUMA-local memory for each worker (default on; a no-op on single-node hosts).
    public func numaAware(_ enabled: Bool) -> Self { with { $0.numaAware = enabled } }
    /// Write coalescing window (default 0: send at once). See `ServerConfiguration.flushInterval`.
    public func flushInterval(_ interval: Duration) -> Self { with { $0.flushInterval = interval } }
    /// Longest room ID a client may join, in UTF-8 bytes (default 256).
    public func maxRoomIDLength(_ bytes: Int) -> Self { with { $0.maxRoomIDLength = bytes } }
    /// Most members per room, enforced atomically on the room's worker (default: no limit).
    public func maxClientsPerRoom(_ count: Int?) -> Self { with { $0.maxClientsPerRoom = count } }
    /// Most simultaneous connections from one IP address (default: no limit).
    public func maxConnectionsPerIP(_ count: Int?) -> Self { with { $0.maxConnectionsPerIP = count } }
    /// Most frames per second from one connection; over it, the connection is closed with
    /// `.rateLimited` (default: no limit).
    public func maxFramesPerSecond(_ count: Int?) -> Self { with { $0.maxFramesPerSecond = count } }
    /// Turns the WebSocket transport on, listening on `address` (default: off). Browsers then
    /// join the same rooms as TCP clients; see `WebSocketConfiguration`.
    public func webSocket(bind address: String) -> Self { with { $0.webSocket = WebSocketConfiguration(bindAddress: address) } }
    /// Turns the WebSocket transport on with every option of `WebSocketConfiguration` (nil: off).
    public func webSocket(_ configuration: WebSocketConfiguration?) -> Self { with { $0.webSocket = configuration } }
    /// Joins a cluster of relays over NATS (default: none); see `ClusterConfiguration`.
    public func cluster(_ configuration: ClusterConfiguration?) -> Self { with { $0.cluster = configuration } }
    /// Joins a cluster of relays over the NATS `servers`, as `node`.
    public func cluster(servers: [String], node: String) -> Self { cluster(ClusterConfiguration(servers: servers, nodeName: node)) }

    public func build() -> ShardedServer {
        ShardedServer(configuration: configuration)
    }
}
