import CGhostSyncShims
import Glibc
import Logging
import Synchronization
import Testing
@testable import GhostSync
@testable import GhostSyncRelay

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Issue 10, item 6: the relay's backpressure log keeps its counts per worker (no lock shared
/// between workers on the drop path) and writes at most one line per worker per second.
@Suite struct BackpressureLogTests {
    /// Captures every log line's message and metadata.
    struct CapturingLogHandler: LogHandler {
        let lines: Lines
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }

        func log(event: LogEvent) {
            lines.lines.withLock { $0.append((event.message.description, event.metadata ?? [:])) }
        }
    }

    final class Lines: Sendable {
        let lines = Mutex<[(String, Logger.Metadata)]>([])
    }

    @Test func dropsAreCountedPerWorkerAndLoggedAtMostOncePerSecond() throws {
        let captured = Lines()
        let logger = Logger(label: "test") { _ in CapturingLogHandler(lines: captured) }
        let handler = LoggingHandler(logger: logger)
        let perWorker = 5_000
        // Two threads posing as workers 3 and 7, dropping at the same time.
        let threads = try [3, 7].map { worker in
            try NativeThread.start(name: "fake-w\(worker)") {
                gs_set_current_worker_index(Int32(worker))
                for _ in 0..<perWorker { handler.onBackpressure(clientID: UUID(), roomID: "lobby") }
                // A disconnect on the worker reports what it counted since its last line.
                handler.onDisconnect(clientID: UUID(), address: try! SocketAddress(parsing: "127.0.0.1:1"), reason: .connectionClosed)
            }
        }
        for thread in threads { pthread_join(thread, nil) }

        let drops = captured.lines.withLock { $0 }.filter { $0.0 == "slow clients: frames dropped" }
        for worker in [3, 7] {
            let lines = drops.filter { $0.1["worker"] == "\(worker)" }
            let total = lines.compactMap { Int($0.1["dropped"]?.description ?? "") }.reduce(0, +)
            #expect(total == perWorker, "worker \(worker): \(lines.count) lines")
            // First drop, then at most one per second boundary crossed, then the final report.
            #expect(lines.count <= 4, "worker \(worker) logged \(lines.count) lines")
        }
    }
}
