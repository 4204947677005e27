import Glibc
import Testing
@testable import GhostSync

extension Relay {
    /// Item 6 of issue 10: state that threads of different workers write must not share cache
    /// lines. A test cannot measure false sharing; these check the layout it relies on.
    @Suite struct CacheLineLayoutTests {
        /// Everything two workers' threads write (their published statistics and their
        /// mailboxes' atomics: doorbell, stack, each ring's two sides) sits in line-aligned
        /// blocks of whole lines that do not overlap, so no two of them share a line.
        @Test func sharedCellsHaveCacheLinesOfTheirOwn() throws {
            let workers = 2
            let statistics = (0..<workers).map { _ in PublishedStatistics() }
            let mailboxes = try (0..<workers).map { try Mailbox(owner: $0, workerCount: workers) }
            defer { mailboxes.forEach { $0.close() } }
            var blocks = statistics.map { $0.block }
            blocks += mailboxes.flatMap { $0.sharedBlocks }
            #expect(blocks.count == workers + workers * (2 + 2 * workers))
            let line = UInt(CacheLine.size)
            for block in blocks {
                #expect(block.address % line == 0)
                #expect(block.byteCount > 0 && block.byteCount % CacheLine.size == 0)
            }
            let sorted = blocks.sorted { $0.address < $1.address }
            for (lower, upper) in zip(sorted, sorted.dropFirst()) {
                #expect(lower.address + UInt(lower.byteCount) <= upper.address)
            }
        }

        /// The sequence lock still gives whole copies: a worker publishes counters that are all
        /// equal, a reader on another thread never sees a mix of two publishes.
        @Test func snapshotsAreNeverTorn() throws {
            let published = PublishedStatistics()
            let rounds = 20_000
            let writer = startThread {
                var statistics = WorkerStatistics()
                for round in 1...rounds {
                    for counter in WorkerStatistics.Counter.allCases { statistics[counter] = round }
                    for bucket in 0...WorkerStatistics.loopTimeBucketBounds.count {
                        statistics.setLoopTimeCount(bucket: bucket, round)
                    }
                    published.publish(statistics)
                }
            }
            var torn = 0
            var last = 0
            while last < rounds {
                let copy = published.snapshot()
                last = copy[.loopIterations]
                let whole = WorkerStatistics.Counter.allCases.allSatisfy { copy[$0] == last }
                    && (0...WorkerStatistics.loopTimeBucketBounds.count).allSatisfy { copy.loopTimeCount(bucket: $0) == last }
                if !whole { torn += 1 }
            }
            pthread_join(writer, nil)
            #expect(torn == 0)
        }
    }
}
