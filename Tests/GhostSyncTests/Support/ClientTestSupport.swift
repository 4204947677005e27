import Testing
@testable import GhostSync

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

struct TimedOut: Error, CustomStringConvertible {
    let what: String
    var description: String { "timed out waiting for \(what)" }
}

/// Runs `body`, failing with `TimedOut` if it takes longer than `timeout` (the body is cancelled).
func within<T: Sendable>(_ timeout: Duration, _ what: String, _ body: @escaping @Sendable () async throws -> T) async throws -> T {
    try await withThrowingTaskGroup(of: T?.self) { group in
        group.addTask { try await body() }
        group.addTask {
            try await Task.sleep(for: timeout)
            return nil
        }
        defer { group.cancelAll() }
        guard let first = try await group.next(), let value = first else { throw TimedOut(what: what) }
        return value
    }
}

/// Waits until `condition` holds (checked every millisecond), or fails after `timeout`.
/// For server state that has no event to await (a join finished on another worker).
func eventually(timeout: Duration = .seconds(10), sourceLocation: SourceLocation = #_sourceLocation, _ condition: () -> Bool) async throws {
    let deadline = ContinuousClock.now + timeout
    while !condition() {
        if ContinuousClock.now > deadline { throw TimedOut(what: "the condition at \(sourceLocation.fileName):\(sourceLocation.line)") }
        try await Task.sleep(for: .milliseconds(1))
    }
}

extension Client {
    static func local(_ port: UInt16) async throws -> Client {
        try await Client.connect(to: "127.0.0.1:\(port)")
    }

    /// The next event, or `TimedOut` (cancelling a `recv()` loses no frame).
    func next(timeout: Duration = .seconds(10)) async throws -> ServerEvent {
        let event = try await within(timeout, "an event") { try await self.recv() }
        guard let event else { throw SyncError.connectionReset }
        return event
    }

    /// `recv()` bounded by `timeout`: the next event, or nil at the end of the stream.
    func recvWithin(_ timeout: Duration = .seconds(10)) async throws -> ServerEvent? {
        try await within(timeout, "an event or the end of the stream") { try await self.recv() }
    }

    /// True when the server closes this connection without sending a frame: a clean end of
    /// stream, or a reset (a socket closed right at accept may be reset by the kernel).
    func closedWithoutAFrame(_ timeout: Duration = .seconds(10)) async throws -> Bool {
        do {
            return try await recvWithin(timeout) == nil
        } catch SyncError.connectionReset {
            return true
        }
    }

    /// Joins and waits for `joined`; returns this client's ID.
    func joined(_ roomID: String) async throws -> UUID {
        try await join(roomID)
    }

    /// A barrier: everything the server sent before the echo has been received by then.
    /// Returns the events that came first.
    @discardableResult
    func sync(_ marker: [UInt8] = [0xEC, 0x40]) async throws -> [ServerEvent] {
        try await echoTest(marker)
        var before: [ServerEvent] = []
        while true {
            let event = try await next()
            if event == .echoTest(marker) { return before }
            before.append(event)
        }
    }

    /// The connection ends within `timeout`: true for a clean close (nil from recv).
    func waitForEnd(timeout: Duration = .seconds(10)) async throws -> Bool {
        try await within(timeout, "the end of the stream") {
            do {
                while try await self.recv() != nil {}
                return true
            } catch {
                return false
            }
        }
    }
}

extension ServerEvent {
    var isPlayerJoined: Bool {
        if case .playerJoined = self { return true }
        return false
    }

    var isPlayerLeft: Bool {
        if case .playerLeft = self { return true }
        return false
    }
}
