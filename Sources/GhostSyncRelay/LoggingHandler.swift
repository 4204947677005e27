import GhostSync
import Logging

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The relay's `ServerHandler`: logs what happens, accepts everything.
///
/// Levels: connects, joins, leaves and clean disconnects at debug; room changes at info;
/// abnormal disconnects (timeouts, resets, oversized or malformed frames) at notice; frames
/// dropped for slow clients at warning, at most one line per worker per second, carrying the
/// frames dropped and the clients they were for since the previous line (every drop is also
/// counted in `ghostsync_frames_dropped_total`).
///
/// The drop counts are per worker (`ShardedServer.currentWorkerIndex`): `onBackpressure` runs
/// once per dropped frame, exactly when a worker is overloaded, so it must not take a lock
/// other workers take. Each worker's window has its own lock, which only that worker takes.
package struct LoggingHandler: ServerHandler {
    private struct DropWindow {
        /// First, so that this window's counts (and, after them, its mutex) sit more than a
        /// cache line from the previous allocation: windows are allocated back to back, and
        /// each is one worker's.
        private var padding = InlineArray<12, UInt64>(repeating: 0)
        var second: Int64 = 0
        var dropped = 0
        var clients: Set<UUID> = []
        var lastRoomID = ""

        init(second: Int64 = 0) {
            self.second = second
        }
    }

    /// One window per worker (index modulo the count; off-worker calls share the last one).
    private static let windowCount = 256

    /// The calling worker (off-worker calls share the last window).
    private static var currentWorker: Int { ShardedServer.currentWorkerIndex ?? (windowCount - 1) }

    let logger: Logger
    private let windows: [Locked<DropWindow>] = (0..<LoggingHandler.windowCount).map { _ in Locked(DropWindow()) }

    package init(logger: Logger) {
        self.logger = logger
    }

    package func onConnect(_ address: SocketAddress) -> Bool {
        logger.debug("client connected", metadata: ["address": "\(address)"])
        return true
    }

    package func onJoin(clientID: UUID, roomID: String, address: SocketAddress) -> Bool {
        logger.debug("client joined", metadata: ["client": "\(clientID)", "room": "\(roomID)"])
        return true
    }

    package func onLeave(clientID: UUID, roomID: String) {
        logger.debug("client left", metadata: ["client": "\(clientID)", "room": "\(roomID)"])
    }

    package func onBackpressure(clientID: UUID, roomID: String) {
        let second = MonotonicClock.nowMilliseconds() / 1000
        let worker = Self.currentWorker
        let report: DropWindow? = windows[worker % Self.windowCount].withLock { window in
            window.dropped += 1
            window.clients.insert(clientID)
            window.lastRoomID = roomID
            guard second > window.second else { return nil }
            defer { window = DropWindow(second: second) }
            return window
        }
        if let report { logDrops(report, worker: worker) }
    }

    private func logDrops(_ window: DropWindow, worker: Int) {
        logger.warning("slow clients: frames dropped", metadata: [
            "worker": "\(worker)", "dropped": "\(window.dropped)", "clients": "\(window.clients.count)",
            "room": "\(window.lastRoomID)",
        ])
    }

    package func onRoomCreate(_ roomID: String) {
        logger.info("room created", metadata: ["room": "\(roomID)"])
    }

    package func onRoomDelete(_ roomID: String) {
        logger.info("room deleted", metadata: ["room": "\(roomID)"])
    }

    package func onWorkerFailed(_ worker: Int, reason: String) {
        logger.critical("worker failed: its shard refuses joins until the relay is restarted; /healthz now answers 503", metadata: ["worker": "\(worker)", "reason": "\(reason)"])
    }

    package func onClusterLinkChanged(worker: Int, isUp: Bool, reason: String?) {
        if isUp {
            logger.notice("cluster: NATS connection up", metadata: ["worker": "\(worker)"])
        } else {
            logger.warning("cluster: NATS connection lost; reconnecting, cross-relay messages are dropped until then", metadata: ["worker": "\(worker)", "reason": "\(reason ?? "")"])
        }
    }

    package func onDisconnect(clientID: UUID, address: SocketAddress, reason: DisconnectReason) {
        // Drops this worker counted since its last line are reported now rather than held
        // until its next drop.
        let worker = Self.currentWorker
        let pending: DropWindow? = windows[worker % Self.windowCount].withLock { window in
            guard window.dropped > 0 else { return nil }
            defer { window = DropWindow(second: window.second) }
            return window
        }
        if let pending { logDrops(pending, worker: worker) }
        let metadata: Logger.Metadata = ["client": "\(clientID)", "address": "\(address)", "reason": "\(reason)"]
        if reason == .connectionClosed {
            logger.debug("client disconnected", metadata: metadata)
        } else {
            logger.notice("client disconnected", metadata: metadata)
        }
    }
}
