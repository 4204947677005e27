import Glibc
import Testing
@testable import GhostSync

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Open descriptors of this process (the suite is serialized, so only our server changes it).
/// The shared client reactor's own epoll descriptor lives as long as the process: started here.
func openDescriptors() -> Set<String> {
    _ = ClientReactor.shared
    var names: Set<String> = []
    guard let directory = opendir("/proc/self/fd") else { return [] }
    defer { closedir(directory) }
    while let entry = readdir(directory) {
        let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        if name.first?.isNumber == true {
            var target = [CChar](repeating: 0, count: 256)
            let count = readlink("/proc/self/fd/\(name)", &target, 255)
            let link = count > 0 ? String(decoding: target[0..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self) : "?"
            // The concurrency runtime opens a timerfd on the first Task.sleep; GhostSync never does.
            if !link.contains("timerfd") { names.insert("\(name) -> \(link)") }
        }
    }
    return names
}

extension Relay {
    @Suite struct LifecycleTests {
        @Test(arguments: workerCounts)
        func shutdownClosesClientsCleanlyAndLeaksNothing(workers: Int) async throws {
            let handler = RecordingHandler()
            let before = openDescriptors()
            let handle = try await ShardedServer.builder()
                .bind("127.0.0.1:0").workers(workers).handler(handler).build().run()
            try handle.createRoom("lobby")
            let rooms = (0..<workers).map { roomID(onShard: $0, of: workers) }
            for room in rooms { try handle.createRoom(room) }
            var clients: [Client] = []
            var raws: [RawClient] = []
            for index in 0..<12 {
                let client = try await Client.local(handle.localAddress.port)
                _ = try await client.joined(index % 3 == 0 ? "lobby" : rooms[index % rooms.count])
                clients.append(client)
                // Raw clients leave input unread by the server at shutdown (a frame half sent).
                let raw = try RawClient(port: handle.localAddress.port)
                try raw.sendRaw(Array(ClientWire.broadcast([1, 2, 3]).encodedFrame().prefix(6)))
                raws.append(raw)
            }
            try await eventually { handle.clientCount == 24 }
            for client in clients { try await client.sync() }  // take the PlayerJoined events
            await handle.shutdown()
            for client in clients {
                // Nothing but the end of the stream: no PlayerLeft storm while everyone is closed.
                #expect(try await client.recvWithin() == nil, "expected a clean end of stream")
            }
            for raw in raws {
                #expect(try raw.waitForClose(timeout: .seconds(5)), "raw client saw a reset, not a clean close")
            }
            #expect(handler.log.events.last == .shutdown)
            #expect(handler.log.events.filter { if case .disconnect(_, .connectionClosed) = $0 { return true } else { return false } }.count == 24)
            clients.removeAll()
            raws.removeAll()
            let after = openDescriptors()
            #expect(after.subtracting(before).isEmpty, "left open: \(after.subtracting(before))")
            // Shutdown is idempotent.
            await handle.shutdown()
        }

        @Test func startAndStopRepeatedly() async throws {
            let before = openDescriptors()
            for round in 0..<20 {
                let handle = try await ShardedServer.builder().bind("127.0.0.1:0").workers(1 + round % 3).build().run()
                try handle.createRoom("lobby")
                let client = try await Client.local(handle.localAddress.port)
                _ = try await client.joined("lobby")
                await handle.shutdown()
                #expect(try await client.waitForEnd())
            }
            let after = openDescriptors()
            #expect(after.subtracting(before).isEmpty, "left open: \(after.subtracting(before))")
        }

        @Test func concurrentShutdownCallsAllReturn() async throws {
            let handle = try await ShardedServer.builder().bind("127.0.0.1:0").workers(2).build().run()
            await withTaskGroup(of: Void.self) { group in
                for _ in 0..<4 { group.addTask { await handle.shutdown() } }
            }
            await #expect(throws: SyncError.self) { _ = try await Client.local(handle.localAddress.port) }
        }

        @Test func portInUseFailsCleanly() async throws {
            let first = try await ShardedServer.builder().bind("127.0.0.1:0").workers(1).build().run()
            let port = first.localAddress.port
            // A second server on the same port: SO_REUSEPORT is only shared within one user's
            // sockets, so hold the port with a plain listener instead.
            await first.shutdown()
            let blocker = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            defer { Glibc.close(blocker) }
            let address = try SocketAddress(parsing: "127.0.0.1:\(port)")
            #expect(address.withSockAddr { bind(blocker, $0, $1) } == 0)
            #expect(listen(blocker, 1) == 0)
            let before = openDescriptors()
            do {
                _ = try await ShardedServer.builder().bind("127.0.0.1:\(port)").workers(2).build().run()
                Issue.record("expected a bind failure")
            } catch {
                guard case .bindFailed = error else { Issue.record("wrong error \(error)"); return }
                #expect(error.description.contains("in use"))
            }
            #expect(openDescriptors().subtracting(before).isEmpty)
            #expect(try workerThreadNames().isEmpty)
        }

        @Test func invalidOptionsAreRejected() async throws {
            await #expect(throws: ServerError.self) { _ = try await ShardedServer.builder().bind("nonsense").build().run() }
            await #expect(throws: ServerError.self) { _ = try await ShardedServer.builder().bind("127.0.0.1:99999").build().run() }
            await #expect(throws: ServerError.self) { _ = try await ShardedServer.builder().workers(0).build().run() }
            await #expect(throws: ServerError.self) { _ = try await ShardedServer.builder().channelCapacity(0).build().run() }
            await #expect(throws: ServerError.self) { _ = try await ShardedServer.builder().pingInterval(.zero).build().run() }
        }

        /// Issue 10, defect 3: shutdown landing in a cross-shard join storm. Connections posted
        /// to a worker that has already stopped used to have only their descriptor closed: no
        /// `onDisconnect`, and the client count, directory entry and per-IP slot never released.
        /// Every accepted connection gets exactly one `onDisconnect`; every count returns to zero.
        @Test(arguments: [2, 4])
        func shutdownDuringAJoinStormEndsEveryConnectionOnce(workers: Int) async throws {
            let rooms = (0..<workers).map { roomID(onShard: $0, of: workers) }
            // Each client bounces between every shard: one write of many JoinRoom frames, which
            // the workers hand the connection along for without further input.
            var storm: [UInt8] = []
            for round in 0..<400 { storm += ClientWire.joinRoom(rooms[round % workers]).encodedFrame() }
            var stranded = 0
            for _ in 0..<5 {
                let handler = RecordingHandler()
                let handle = try await ShardedServer.builder()
                    .bind("127.0.0.1:0").workers(workers).handler(handler).maxConnectionsPerIP(10_000).build().run()
                for room in rooms { try handle.createRoom(room) }
                var sockets: [RawClient] = []
                for _ in 0..<30 {
                    let socket = try RawClient(port: handle.localAddress.port)
                    try socket.sendRaw(storm)
                    sockets.append(socket)
                }
                try await eventually { handle.clientCount == sockets.count }  // all accepted
                try await eventually {
                    handle.workerStatistics.reduce(WorkerStatistics(), +)[.handoffsOut] >= 200
                }
                await handle.shutdown()
                let totals = handle.workerStatistics.reduce(WorkerStatistics(), +)
                stranded += totals[.handoffsOut] - totals[.handoffsIn]

                let events = handler.log.events
                let connects = events.filter { if case .connect = $0 { return true } else { return false } }.count
                let disconnected = events.compactMap { event -> UUID? in
                    if case .disconnect(let id, _) = event { return id } else { return nil }
                }
                #expect(connects == sockets.count)
                #expect(disconnected.count == connects, "\(connects) accepted, \(disconnected.count) onDisconnect")
                #expect(Set(disconnected).count == disconnected.count, "a connection ended twice")
                #expect(events.last == .shutdown)
                #expect(handle.clientCount == 0)
                #expect(handle.core.clients.count == 0)
                #expect(handle.core.connectionsPerIP.withLock { $0.isEmpty })
            }
            // How often shutdown caught a connection in a mailbox (the case this test is for).
            print("join storm: \(stranded) handoffs stranded at shutdown over 5 rounds on \(workers) workers")
        }

        /// A client that never closes its side holds shutdown for the grace period (1 s); the
        /// worker must sleep through it. It used to spin: the eventfd that delivered `.stop`
        /// stayed readable in the lingering wait. Measured on the worker thread itself, 600 ms
        /// into the grace period (a measurement window, not a synchronisation).
        @Test func lingeringShutdownDoesNotSpin() async throws {
            let handle = try await ShardedServer.builder().bind("127.0.0.1:0").workers(1).build().run()
            let stubborn = try RawClient(port: handle.localAddress.port)
            try stubborn.send(.ping)
            _ = try stubborn.receive()  // accepted and served
            let before = try #require(cpuTicks(ofThreadNamed: "ghost-w0"))
            let shutdown = Task { await handle.shutdown() }
            try await Task.sleep(for: .milliseconds(600))
            let during = try #require(cpuTicks(ofThreadNamed: "ghost-w0"), "the worker ended before the grace period did")
            await shutdown.value
            // Ticks are 10 ms: a spinning worker burns about 60 in the window, a sleeping one 0.
            #expect(during - before < 15, "the worker used \(during - before) ticks of CPU while lingering")
            _ = stubborn
        }

        @Test func ipv6Loopback() async throws {
            let handle = try await ShardedServer.builder().bind("[::1]:0").workers(2).build().run()
            try handle.createRoom("lobby")
            #expect(handle.localAddress.isIPv6)
            let client = try await Client.connect(to: "[::1]:\(handle.localAddress.port)")
            let id = try await client.joined("lobby")
            #expect(handle.clientAddress(id)?.isLoopback == true)
            await handle.shutdown()
        }
    }
}

func workerThreadNames() throws -> [String] {
    var names: [String] = []
    guard let directory = opendir("/proc/self/task") else { return [] }
    defer { closedir(directory) }
    while let entry = readdir(directory) {
        let tid = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        if let name = readFile("/proc/self/task/\(tid)/comm"), name.hasPrefix("ghost-w") { names.append(name) }
    }
    return names
}

/// User plus system CPU time of this process's thread named `name`, in clock ticks.
func cpuTicks(ofThreadNamed name: String) -> Int? {
    guard let directory = opendir("/proc/self/task") else { return nil }
    defer { closedir(directory) }
    while let entry = readdir(directory) {
        let tid = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        guard readFile("/proc/self/task/\(tid)/comm")?.trimmingCharacters(in: .whitespacesAndNewlines) == name,
              let stat = readFile("/proc/self/task/\(tid)/stat"),
              let close = stat.lastIndex(of: ")")
        else { continue }
        // Fields after the command's closing parenthesis: state is field 3, utime 14, stime 15.
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 12, let user = Int(fields[11]), let system = Int(fields[12]) else { return nil }
        return user + system
    }
    return nil
}
