import Glibc
import Testing
@testable import GhostSync

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// A `nats-server` child process on free loopback ports, alone or as one node of a
/// `NATSCluster`, for tests that need the real server.
///
/// Its log (stdout and stderr) is read on a thread of its own as it comes, so the server never
/// blocks on a full pipe, and tests can wait for a line (`waitForLog`) instead of sleeping; it
/// is also written to `server.log` in the server's directory. Every wait is bounded. The server
/// is stopped by PID (SIGTERM, then SIGKILL) by `stop()` and, whatever happened, when the
/// object goes away; its directory (configuration, JetStream store, log) is removed then.
///
/// ```swift
/// let server = try NATSServerProcess.start(jetStream: true)
/// defer { server.stop() }
/// let client = try NATSTestClient(port: server.port)
/// ```
final class NATSServerProcess {
    /// Where nats-server is installed, if it is (`make deps` installs Debian's `nats-server`).
    static let executable: String? = {
        let path = (getenv("PATH").map { String(cString: $0) } ?? "") + ":/usr/sbin:/usr/bin:/usr/local/bin"
        return path.split(separator: ":").map { "\($0)/nats-server" }.first { access($0, X_OK) == 0 }
    }()

    static var isInstalled: Bool { executable != nil }

    /// The server's name (`server_name`).
    let name: String
    /// The client port, on 127.0.0.1.
    let port: UInt16
    /// The HTTP monitoring port (`/varz`, `/routez`, `/jsz`, `/healthz`), on 127.0.0.1.
    let monitorPort: UInt16
    /// The cluster (route) port, for a cluster node.
    let clusterPort: UInt16?
    /// The server's directory: `server.conf`, `jetstream/` (the store), `server.log`.
    let directory: String
    /// Whether this server's directory belongs to it (removed with it) or to its cluster.
    private let ownsDirectory: Bool
    private let arguments: [String]
    private var child: pid_t?
    private var log: ProcessLog?

    /// The running process's ID, or nil once it has stopped.
    var pid: pid_t? { child }
    var clientAddress: String { "127.0.0.1:\(port)" }
    var clientURL: String { "nats://127.0.0.1:\(port)" }

    /// Starts a lone server: `-a 127.0.0.1 -p PORT -m MONITOR_PORT`, and with `jetStream`,
    /// `-js -sd DIR/jetstream`; with `configuration` (nats-server's config syntax, e.g.
    /// `ping_interval: "250ms"` or `max_payload: 1024`) also `-c DIR/server.conf` holding it.
    /// Waits until it is ready (at most `timeout`).
    static func start(jetStream: Bool = false, configuration: String? = nil, extraArguments: [String] = [], timeout: Duration = .seconds(20)) throws -> NATSServerProcess {
        // A free port can be taken by someone else before the server binds it: try again.
        var lastError: Error?
        for _ in 0..<3 {
            let directory = try makeTemporaryDirectory()
            let ports = try freePorts(2)
            var arguments = ["-a", "127.0.0.1", "-p", "\(ports[0])", "-m", "\(ports[1])", "-n", "test"]
            if jetStream { arguments += ["-js", "-sd", directory + "/jetstream"] }
            if let configuration {
                try write(configuration + "\n", to: directory + "/server.conf")
                arguments += ["-c", directory + "/server.conf"]
            }
            let server = NATSServerProcess(name: "test", port: ports[0], monitorPort: ports[1], clusterPort: nil, directory: directory, ownsDirectory: true, arguments: arguments + extraArguments)
            do {
                try server.start(timeout: timeout)
                return server
            } catch {
                lastError = error
                server.stop()
            }
        }
        throw lastError!
    }

    /// A server run from a configuration file already written to `directory/server.conf`.
    init(name: String, port: UInt16, monitorPort: UInt16, clusterPort: UInt16?, directory: String, ownsDirectory: Bool, arguments: [String]) {
        self.name = name
        self.port = port
        self.monitorPort = monitorPort
        self.clusterPort = clusterPort
        self.directory = directory
        self.ownsDirectory = ownsDirectory
        self.arguments = arguments
    }

    deinit {
        stop(timeout: .seconds(2))
        if ownsDirectory { removeDirectory(directory) }
    }

    /// Starts (or, after `stop()`, restarts: same ports, same store) the process and waits until
    /// it logs "Server is ready"; throws with the log's tail if it exits or times out first.
    func start(timeout: Duration = .seconds(20)) throws {
        guard child == nil else { return }
        guard let executable = Self.executable else { throw TimedOut(what: "nats-server to be installed (make deps)") }
        let log = try ProcessLog(path: directory + "/server.log")
        let pid = try Self.spawn(executable, arguments, output: log.writeDescriptor)
        log.startReading(name: "nats-log-\(name)")
        child = pid
        self.log = log
        let readyFrom = log.mark
        guard try waitForLog(containing: "Server is ready", after: readyFrom, timeout: timeout) else {
            throw TimedOut(what: "nats-server \(name) to be ready; log:\n\(log.text.suffix(2000))")
        }
    }

    /// Stops the process by PID: SIGTERM, then SIGKILL if it has not exited within `timeout`;
    /// reaps it. Safe to call more than once.
    func stop(timeout: Duration = .seconds(10)) {
        guard let pid = child else { return }
        kill(pid, SIGTERM)
        if !(log?.waitUntilClosed(timeout: timeout) ?? false) {
            kill(pid, SIGKILL)
            _ = log?.waitUntilClosed(timeout: .seconds(5))
        }
        var status: Int32 = 0
        waitpid(pid, &status, 0)
        child = nil
    }

    /// Sends `signal` (SIGSTOP, SIGCONT, SIGKILL, SIGHUP …) to the running process.
    func signal(_ signal: Int32) {
        if let child { kill(child, signal) }
    }

    /// Everything the server has logged since its last start.
    var logText: String { log?.text ?? "" }

    /// Waits until the log, from its byte `after` on (default: since the start), contains
    /// `text`; false if it did not within `timeout`. Throws if the server exits first.
    @discardableResult
    func waitForLog(containing text: String, after offset: Int = 0, timeout: Duration = .seconds(10)) throws -> Bool {
        guard let log else { throw TimedOut(what: "\(text.debugDescription) in the log of a server never started") }
        let needle = Array(text.utf8)
        var exited = false
        let found = log.wait(timeout: timeout) { bytes, closed in
            if bytes.count > offset, bytes[offset...].firstRange(of: needle) != nil { return true }
            exited = closed
            return closed
        }
        if exited { throw TimedOut(what: "\(text.debugDescription) in the log, but nats-server \(name) exited:\n\(log.text.suffix(2000))") }
        return found
    }

    /// The log's current length: pass it as `after` to wait only for lines logged from now on.
    var logMark: Int { log?.mark ?? 0 }

    /// GET `path` on the monitoring port; the body (JSON).
    func monitor(_ path: String, timeout: Duration = .seconds(5)) throws -> [UInt8] {
        try HTTPGet.body(port: monitorPort, path: path, timeout: timeout)
    }

    // MARK: Process

    private static func spawn(_ executable: String, _ arguments: [String], output: Int32) throws -> pid_t {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        // dup2 clears close-on-exec on the target: the child's 1 and 2 stay open, the pipe's own
        // descriptor (close-on-exec) does not leak into it or into any other child.
        posix_spawn_file_actions_adddup2(&actions, output, 1)
        posix_spawn_file_actions_adddup2(&actions, output, 2)
        var attributes = Subprocess.cleanSignalAttributes()
        defer { posix_spawnattr_destroy(&attributes) }
        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pid = pid_t()
        let result = posix_spawn(&pid, executable, &actions, &attributes, argv, environ)
        guard result == 0 else { throw TimedOut(what: "spawn \(executable): errno \(result)") }
        return pid
    }

    // MARK: Files and ports

    static func makeTemporaryDirectory() throws -> String {
        var template = Array("/tmp/ghostsync-nats-XXXXXX".utf8CString)
        guard let path = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
            throw TimedOut(what: "mkdtemp: errno \(errno)")
        }
        return String(cString: path)
    }

    /// `count` distinct free ports on 127.0.0.1 (bound together, then released).
    static func freePorts(_ count: Int) throws -> [UInt16] {
        var listeners: [Listener] = []
        defer { listeners.forEach { $0.close() } }
        for _ in 0..<count { listeners.append(try Listener(bindingTo: SocketAddress(parsing: "127.0.0.1:0"))) }
        return listeners.map(\.address.port)
    }

    static func write(_ text: String, to path: String) throws {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw TimedOut(what: "open \(path): errno \(errno)") }
        defer { close(fd) }
        let bytes = Array(text.utf8)
        guard bytes.withUnsafeBytes({ Glibc.write(fd, $0.baseAddress, $0.count) }) == bytes.count else {
            throw TimedOut(what: "write \(path): errno \(errno)")
        }
    }
}

/// Removes `path` and everything under it (for test directories only).
func removeDirectory(_ path: String) {
    guard path.hasPrefix("/tmp/ghostsync-") else { return }
    try? FileManager.default.removeItem(atPath: path)
}

/// Three (or `size`) nats-servers on loopback, joined by routes into one cluster, with
/// JetStream when asked (per the research notes, section 2.9): each node `n1`, `n2`, … has its
/// own client, route and monitoring port, `ping_interval: "1s"` and `ping_max: 2` (a stopped
/// peer is found in about 2 s, not 4 minutes), and its store under the cluster's directory.
///
/// `start` returns once every node is ready, has a route to every other, and (with JetStream)
/// agrees on a metadata leader. Nodes can be stopped, restarted, signalled (SIGSTOP/SIGCONT)
/// one by one; all are stopped by `stop()` and when the cluster goes away.
final class NATSCluster {
    let name: String
    let servers: [NATSServerProcess]
    let directory: String
    let jetStream: Bool

    var clientPorts: [UInt16] { servers.map(\.port) }

    /// `waitForJetStream` false: return once the routes are up, before JetStream has elected
    /// its meta leader (as `make cluster-demo` starts its relays).
    static func start(size: Int = 3, jetStream: Bool = true, waitForJetStream: Bool = true, name: String = "relay", pingInterval: String = "1s", timeout: Duration = .seconds(30)) throws -> NATSCluster {
        var lastError: Error?
        for _ in 0..<3 {
            let cluster = try NATSCluster(size: size, jetStream: jetStream, name: name, pingInterval: pingInterval)
            do {
                for server in cluster.servers { try server.start(timeout: timeout) }
                try cluster.waitUntilFormed(timeout: timeout, jetStream: jetStream && waitForJetStream)
                return cluster
            } catch {
                lastError = error
                cluster.stop()
            }
        }
        throw lastError!
    }

    private init(size: Int, jetStream: Bool, name: String, pingInterval: String) throws {
        self.name = name
        self.jetStream = jetStream
        directory = try NATSServerProcess.makeTemporaryDirectory()
        let ports = try NATSServerProcess.freePorts(3 * size)
        let routes = (0..<size).map { "nats-route://127.0.0.1:\(ports[3 * $0 + 1])" }.joined(separator: ", ")
        var servers: [NATSServerProcess] = []
        for index in 0..<size {
            let node = "n\(index + 1)"
            let nodeDirectory = directory + "/" + node
            mkdir(nodeDirectory, 0o755)
            let (client, route, monitor) = (ports[3 * index], ports[3 * index + 1], ports[3 * index + 2])
            var configuration = """
            server_name: \(node)
            listen: 127.0.0.1:\(client)
            http: 127.0.0.1:\(monitor)
            ping_interval: "\(pingInterval)"
            ping_max: 2
            cluster {
              name: \(name)
              listen: 127.0.0.1:\(route)
              routes: [\(routes)]
            }

            """
            if jetStream { configuration += "jetstream {\n  store_dir: \"\(nodeDirectory)/jetstream\"\n}\n" }
            try NATSServerProcess.write(configuration, to: nodeDirectory + "/server.conf")
            servers.append(NATSServerProcess(
                name: node, port: client, monitorPort: monitor, clusterPort: route, directory: nodeDirectory,
                ownsDirectory: false, arguments: ["-c", nodeDirectory + "/server.conf"]
            ))
        }
        self.servers = servers
    }

    deinit {
        stop()
        removeDirectory(directory)
    }

    /// Stops every node (by PID).
    func stop() {
        for server in servers { server.stop(timeout: .seconds(5)) }
    }

    /// Waits until every running node routes to every other running node and, with JetStream,
    /// all of them name the same metadata leader. Monitoring endpoints are polled (another
    /// process's state has no event to await), between polls waiting at most 50 ms for the
    /// next log line of any node.
    func waitUntilFormed(timeout: Duration = .seconds(30), jetStream: Bool? = nil) throws {
        let jetStream = jetStream ?? self.jetStream
        let deadline = ContinuousClock.now + timeout
        let running = servers.filter { $0.pid != nil }
        var lastState = ""
        while ContinuousClock.now < deadline {
            var formed = true
            var leaders: Set<String> = []
            var states: [String] = []
            // Each node's server ID and the IDs its routes lead to (2.9's /routez names no peer).
            var identities: [String: String] = [:]
            var peers: [String: Set<String>] = [:]
            for server in running {
                guard let routez = try? JSONDecoder().decode(Routez.self, from: Data(server.monitor("/routez"))) else {
                    formed = false
                    continue
                }
                identities[server.name] = routez.serverID
                peers[server.name] = Set((routez.routes ?? []).map(\.remoteID))
            }
            for server in running {
                let expected = Set(running.filter { $0 !== server }.compactMap { identities[$0.name] })
                let reached = peers[server.name] ?? []
                if expected.count != running.count - 1 || !expected.isSubset(of: reached) { formed = false }
                var state = "\(server.name): \(reached.intersection(expected).count) of \(running.count - 1) routes"
                if jetStream {
                    let leader = (try? JSONDecoder().decode(Jsz.self, from: Data(server.monitor("/jsz"))))?.metaCluster?.leader
                    if let leader, !leader.isEmpty { leaders.insert(leader) } else { formed = false }
                    state += ", meta leader \(leader ?? "none")"
                }
                states.append(state)
            }
            lastState = states.joined(separator: "; ")
            if formed && (!jetStream || leaders.count == 1) { return }
            let mark = running.first?.logMark ?? 0
            _ = try? running.first?.waitForLog(containing: "\n", after: mark, timeout: .milliseconds(50))
        }
        throw TimedOut(what: "cluster \(name) to form (\(lastState))")
    }

    private struct Routez: Decodable {
        struct Route: Decodable {
            var remoteID: String
            enum CodingKeys: String, CodingKey { case remoteID = "remote_id" }
        }
        var serverID: String
        var routes: [Route]?
        enum CodingKeys: String, CodingKey {
            case serverID = "server_id"
            case routes
        }
    }

    private struct Jsz: Decodable {
        struct Meta: Decodable { var leader: String? }
        var metaCluster: Meta?
        enum CodingKeys: String, CodingKey { case metaCluster = "meta_cluster" }
    }
}

/// A child process's output, read by a thread of its own from a pipe (so the child never blocks
/// on it), kept in memory and appended to a file; readers wait on a condition variable for text
/// or for the end of the output (the child exited).
///
/// Thread safety: `contents` and `closed` are read and written only under `mutex`.
final class ProcessLog: @unchecked Sendable {
    /// The pipe's writing end, for the child (close-on-exec here; the child gets a dup).
    let writeDescriptor: Int32
    private let readDescriptor: Int32
    private let file: Int32
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let condition = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    private var contents: [UInt8] = []
    private var closed = false

    init(path: String) throws {
        var descriptors: [Int32] = [0, 0]
        // pipe2 needs _GNU_SOURCE; close-on-exec right after instead (a child spawned by another
        // thread in between could inherit the pipe, and only delays the end of this log).
        guard pipe(&descriptors) == 0 else { throw TimedOut(what: "pipe: errno \(errno)") }
        for descriptor in descriptors { _ = fcntl(descriptor, F_SETFD, FD_CLOEXEC) }
        readDescriptor = descriptors[0]
        writeDescriptor = descriptors[1]
        file = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        pthread_mutex_init(mutex, nil)
        var attributes = pthread_condattr_t()
        pthread_condattr_init(&attributes)
        pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC)
        pthread_cond_init(condition, &attributes)
        pthread_condattr_destroy(&attributes)
    }

    deinit {
        if file >= 0 { close(file) }
        pthread_cond_destroy(condition)
        pthread_mutex_destroy(mutex)
        condition.deallocate()
        mutex.deallocate()
    }

    /// Closes this process's copy of the writing end and starts the reading thread, which ends
    /// when every writer has closed (the child exited).
    func startReading(name: String) {
        close(writeDescriptor)
        let started = try? NativeThread.start(name: String(name.prefix(15)), detached: true) { [self] in
            var chunk = [UInt8](repeating: 0, count: 16 * 1024)
            while true {
                let count = chunk.withUnsafeMutableBytes { read(readDescriptor, $0.baseAddress, $0.count) }
                if count < 0 && errno == EINTR { continue }
                guard count > 0 else { break }
                if file >= 0 { _ = chunk.withUnsafeBytes { Glibc.write(file, $0.baseAddress, count) } }
                locked {
                    contents += chunk[0..<count]
                    pthread_cond_broadcast(condition)
                }
            }
            close(readDescriptor)
            locked {
                closed = true
                pthread_cond_broadcast(condition)
            }
        }
        if started == nil {
            close(readDescriptor)
            locked { closed = true }
        }
    }

    var text: String { locked { String(decoding: contents, as: UTF8.self) } }
    var mark: Int { locked { contents.count } }
    var isClosed: Bool { locked { closed } }

    /// Waits until `predicate(output, closed)` holds, at most `timeout`; whether it did.
    func wait(timeout: Duration, until predicate: ([UInt8], Bool) -> Bool) -> Bool {
        var deadline = timespec()
        clock_gettime(CLOCK_MONOTONIC, &deadline)
        let (seconds, attoseconds) = timeout.components
        deadline.tv_sec += Int(seconds)
        deadline.tv_nsec += Int(attoseconds / 1_000_000_000)
        if deadline.tv_nsec >= 1_000_000_000 {
            deadline.tv_sec += 1
            deadline.tv_nsec -= 1_000_000_000
        }
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        while !predicate(contents, closed) {
            if pthread_cond_timedwait(condition, mutex, &deadline) == ETIMEDOUT { return predicate(contents, closed) }
        }
        return true
    }

    /// Waits until the output has ended (the child exited), at most `timeout`.
    func waitUntilClosed(timeout: Duration) -> Bool {
        wait(timeout: timeout) { _, closed in closed }
    }

    private func locked<T>(_ body: () -> T) -> T {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return body()
    }
}

/// A minimal HTTP/1.1 GET for monitoring endpoints: the body, read until the server closes.
enum HTTPGet {
    static func body(port: UInt16, path: String, timeout: Duration) throws -> [UInt8] {
        let client = try RawClient(port: port)
        try client.sendRaw(Array("GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".utf8))
        let response = Array(try client.readAll(timeout: timeout).utf8)
        guard let end = response.firstRange(of: Array("\r\n\r\n".utf8)) else { throw TimedOut(what: "an HTTP response from port \(port)") }
        return Array(response[end.upperBound...])
    }
}

extension Trait where Self == ConditionTrait {
    /// For suites that start real nats-servers: skipped, saying why, where none is installed.
    static var requiresNATSServer: Self {
        .enabled(if: NATSServerProcess.isInstalled, "nats-server is not installed (make deps installs it)")
    }
}
