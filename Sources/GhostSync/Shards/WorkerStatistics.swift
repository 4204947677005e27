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
        case disconnectsRateLimited
        case disconnectsKicked
        /// Broadcasts the server itself sent to a room (`ServerHandle.broadcast`).
        case serverBroadcasts
        /// Client broadcasts a `BroadcastFilter` dropped or rejected.
        case broadcastsFiltered
        /// Joins refused because the room had `maxClientsPerRoom` members.
        case joinsRefusedFull
        /// Time spent working (epoll_wait return to the end of the iteration), in nanoseconds.
        case busyNanoseconds
        /// WebSocket handshakes completed (these clients are also in `connectionsAccepted`).
        case webSocketUpgrades
        /// WebSocket handshakes answered with an HTTP error (malformed, wrong version, origin,
        /// subprotocol, too large) or not finished within the handshake timeout.
        case webSocketHandshakesRefused
        /// Plain HTTP GETs answered on the WebSocket port (served files and 404s).
        case httpResponses
        /// WebSocket Pings answered with a Pong.
        case webSocketPingsAnswered
        /// Upgraded WebSocket clients that ended (also counted in one `disconnects*` counter).
        case webSocketDisconnects
        /// Cluster (docs/cluster.md): NATS messages and payload bytes this worker published and
        /// received, publishes dropped (link down, queue full, over NATS's max_payload),
        /// connections made and lost, protocol errors and unreadable messages, and relays
        /// found dead (counted by worker 0 only, each worker acts on it).
        case clusterMessagesOut
        case clusterBytesOut
        case clusterMessagesIn
        case clusterBytesIn
        case clusterDrops
        case clusterConnects
        case clusterDisconnects
        case clusterErrors
        case clusterDeadNodes

        public var name: String {
            String(describing: self).reduce(into: "") { name, character in
                if character.isUppercase { name += "_" + character.lowercased() } else { name.append(character) }
            }
        }
    }

    private var values = InlineArray<40, Int>(repeating: 0)
    private var loopTimeCounts = InlineArray<9, Int>(repeating: 0)

    /// Upper bounds (microseconds) of the loop-iteration time histogram; a last, unbounded
    /// bucket follows.
    public static let loopTimeBucketBounds: [Int] = [10, 50, 100, 500, 1_000, 5_000, 10_000, 50_000]

    public init() {}

    /// How many iterations took at most `loopTimeBucketBounds[index]` µs but more than the
    /// bound before it (`index == loopTimeBucketBounds.count`: longer than every bound).
    public func loopTimeCount(bucket index: Int) -> Int { loopTimeCounts[index] }

    mutating func recordIteration(nanoseconds: UInt64) {
        self[.busyNanoseconds] += Int(nanoseconds)
        let micros = Int(nanoseconds / 1000)
        var bucket = 0
        while bucket < Self.loopTimeBucketBounds.count && micros > Self.loopTimeBucketBounds[bucket] { bucket += 1 }
        loopTimeCounts[bucket] += 1
    }

    mutating func setLoopTimeCount(bucket index: Int, _ count: Int) { loopTimeCounts[index] = count }

    public subscript(_ counter: Counter) -> Int {
        get { values[counter.rawValue] }
        set { values[counter.rawValue] = newValue }
    }

    public static func == (lhs: Self, rhs: Self) -> Bool {
        Counter.allCases.allSatisfy { lhs[$0] == rhs[$0] }
            && (0...loopTimeBucketBounds.count).allSatisfy { lhs.loopTimeCounts[$0] == rhs.loopTimeCounts[$0] }
    }

    /// Adds another worker's counts (for server totals).
    public static func + (lhs: Self, rhs: Self) -> Self {
        var sum = lhs
        for counter in Counter.allCases { sum[counter] += rhs[counter] }
        for bucket in 0...loopTimeBucketBounds.count { sum.loopTimeCounts[bucket] += rhs.loopTimeCounts[bucket] }
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
        case .rateLimited: self[.disconnectsRateLimited] += 1
        case .kicked: self[.disconnectsKicked] += 1
        }
    }
}

/// The last published copy of a worker's statistics, readable from any thread. Written only by
/// its worker; a sequence lock lets readers retry if they raced a publish.
///
/// All its cells (sequence, counters, histogram) are one `AtomicCells` block of their own
/// lines (256 B): the worker writes them every iteration, and with one heap object per cell
/// (as before) the cells of different workers sat side by side in the heap, so each worker's
/// publish invalidated lines other workers were writing (false sharing between cores).
final class PublishedStatistics: Sendable {
    private static let bucketCount = WorkerStatistics.loopTimeBucketBounds.count + 1
    private static let counterCount = WorkerStatistics.Counter.allCases.count
    /// Cell 0: the sequence, odd while a publish is in progress. Then the counters, then the
    /// loop-time buckets.
    private let cells = AtomicCells(count: 1 + counterCount + bucketCount)
    private static let sequence = 0
    private static let firstCounter = 1
    private static let firstBucket = 1 + counterCount

    /// Where the cells are, for layout checks in tests.
    var block: (address: UInt, byteCount: Int) { (cells.address, cells.byteCount) }

    /// Called only by the owning worker.
    func publish(_ statistics: WorkerStatistics) {
        let start = cells[Self.sequence].load(ordering: .relaxed)
        cells[Self.sequence].store(start &+ 1, ordering: .relaxed)
        atomicMemoryFence(ordering: .releasing)
        for counter in WorkerStatistics.Counter.allCases {
            cells[Self.firstCounter + counter.rawValue].store(statistics[counter], ordering: .relaxed)
        }
        for bucket in 0..<Self.bucketCount {
            cells[Self.firstBucket + bucket].store(statistics.loopTimeCount(bucket: bucket), ordering: .relaxed)
        }
        cells[Self.sequence].store(start &+ 2, ordering: .releasing)
    }

    /// Called from any thread: a consistent copy of the last publish.
    func snapshot() -> WorkerStatistics {
        while true {
            let before = cells[Self.sequence].load(ordering: .acquiring)
            if before & 1 == 1 { continue }
            var copy = WorkerStatistics()
            for counter in WorkerStatistics.Counter.allCases {
                copy[counter] = cells[Self.firstCounter + counter.rawValue].load(ordering: .relaxed)
            }
            for bucket in 0..<Self.bucketCount {
                copy.setLoopTimeCount(bucket: bucket, cells[Self.firstBucket + bucket].load(ordering: .relaxed))
            }
            atomicMemoryFence(ordering: .acquiring)
            if cells[Self.sequence].load(ordering: .relaxed) == before { return copy }
        }
    }
}
