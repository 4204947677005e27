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
/// dropped for a slow client at warning, at most one line per client per second, carrying the
/// number dropped since the previous line (the rest is counted, not logged).
package struct LoggingHandler: ServerHandler {
    private struct DropWindow {
        var second: Int64
        var dropped: Int
    }

    let logger: Logger
    private let drops = Locked<[UUID: DropWindow]>([:])

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
        let report: Int? = drops.withLock { drops in
            var window = drops[clientID] ?? DropWindow(second: second - 1, dropped: 0)
            window.dropped += 1
            defer { drops[clientID] = window }
            guard second > window.second else { return nil }
            let count = window.dropped
            window = DropWindow(second: second, dropped: 0)
            return count
        }
        if let report {
            logger.warning("slow client: frames dropped", metadata: ["client": "\(clientID)", "room": "\(roomID)", "dropped": "\(report)"])
        }
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

    package func onDisconnect(clientID: UUID, address: SocketAddress, reason: DisconnectReason) {
        // Frames dropped since the last rate-limited line are reported now, not lost.
        if let window = drops.withLock({ $0.removeValue(forKey: clientID) }), window.dropped > 0 {
            logger.warning("slow client: frames dropped", metadata: ["client": "\(clientID)", "dropped": "\(window.dropped)"])
        }
        let metadata: Logger.Metadata = ["client": "\(clientID)", "address": "\(address)", "reason": "\(reason)"]
        if reason == .connectionClosed {
            logger.debug("client disconnected", metadata: metadata)
        } else {
            logger.notice("client disconnected", metadata: metadata)
        }
    }
}
