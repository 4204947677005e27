import Synchronization

/// What one worker has done since the server started. Counted in plain integers by the worker
/// itself (no atomic on the relay path) and published once per loop iteration.
public struct WorkerStatistics: Sendable, Equatable {
    /// One counter. `name` is the snake_case name used in metrics.
    public enum Counter: Int, CaseIterable, Sendable {
        case loopIterations
        case connectionsAccepted
        /// Closed at accept: over `maxClients` or refused by `onConnect`.
        case connectionsRefused
        case readCalls
        case bytesRead
        case framesReceived
        /// Frames put in client queues (each recipient of a broadcast counts once).
        case framesQueued
        /// Frames dropped because a client's queue was full.
        case framesDropped
        case writeCalls
        case bytesWritten
        case joins
        case leaves
        case handoffsOut
        case handoffsIn
        case disconnectsIdleTimeout
        case disconnectsPingTimeout
        case disconnectsClosed
        case disconnectsReset
        case disconnectsPayloadTooLarge
        case disconnectsProtocol

        public var name: String {
            String(describing: self).reduce(into: "") { name, character in
                if character.isUppercase { name += "_" + character.lowercased() } else { name.append(character) }
            }
        }
    }

    private var values = InlineArray<20, Int>(repeating: 0)

    public init() {}

    public subscript(_ counter: Counter) -> Int {
        get { values[counter.rawValue] }
        set { values[counter.rawValue] = newValue }
    }

    public static func == (lhs: Self, rhs: Self) -> Bool {
        Counter.allCases.allSatisfy { lhs[$0] == rhs[$0] }
    }

    /// Adds another worker's counts (for server totals).
    public static func + (lhs: Self, rhs: Self) -> Self {
        var sum = lhs
        for counter in Counter.allCases { sum[counter] += rhs[counter] }
        return sum
    }

    mutating func countDisconnect(_ reason: DisconnectReason) {
        switch reason {
        case .idleTimeout: self[.disconnectsIdleTimeout] += 1
        case .pingTimeout: self[.disconnectsPingTimeout] += 1
        case .connectionClosed: self[.disconnectsClosed] += 1
        case .connectionReset: self[.disconnectsReset] += 1
        case .payloadTooLarge: self[.disconnectsPayloadTooLarge] += 1
        case .protocol: self[.disconnectsProtocol] += 1
        }
    }
}

/// The last published copy of a worker's statistics, readable from any thread. Written only by
/// its worker; a sequence lock lets readers retry if they raced a publish.
final class PublishedStatistics: Sendable {
    private final class Cell: Sendable {
        let value = Atomic<Int>(0)
    }

    /// Odd while a publish is in progress.
    private let sequence = Atomic<UInt64>(0)
    private let cells: [Cell] = WorkerStatistics.Counter.allCases.map { _ in Cell() }

    /// Called only by the owning worker.
    func publish(_ statistics: WorkerStatistics) {
        let start = sequence.load(ordering: .relaxed)
        sequence.store(start &+ 1, ordering: .relaxed)
        atomicMemoryFence(ordering: .releasing)
        for counter in WorkerStatistics.Counter.allCases {
            cells[counter.rawValue].value.store(statistics[counter], ordering: .relaxed)
        }
        sequence.store(start &+ 2, ordering: .releasing)
    }

    /// Called from any thread: a consistent copy of the last publish.
    func snapshot() -> WorkerStatistics {
        while true {
            let before = sequence.load(ordering: .acquiring)
            if before & 1 == 1 { continue }
            var copy = WorkerStatistics()
            for counter in WorkerStatistics.Counter.allCases {
                copy[counter] = cells[counter.rawValue].value.load(ordering: .relaxed)
            }
            atomicMemoryFence(ordering: .acquiring)
            if sequence.load(ordering: .relaxed) == before { return copy }
        }
    }
}
