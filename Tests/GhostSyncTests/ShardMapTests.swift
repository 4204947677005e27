import Testing
@testable import GhostSync

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

@Suite struct ShardMapTests {
    @Test func fnv1aReferenceValues() {
        // Published FNV-1a 64-bit test values.
        #expect(ShardMap.fnv1a("") == 0xcbf2_9ce4_8422_2325)
        #expect(ShardMap.fnv1a("a") == 0xaf63_dc4c_8601_ec8c)
        #expect(ShardMap.fnv1a("foobar") == 0x8594_4171_f739_67e8)
    }

    @Test func fmix64ReferenceValues() {
        #expect(ShardMap.mix(0) == 0)
        #expect(ShardMap.mix(1) == 0xb456_bcfc_34c2_cb2c)
    }

    /// Placement decides where rooms live, so it must never change by accident: these values
    /// are the documented algorithm's (docs/architecture.md, "Shard placement"), computed by a
    /// separate Python implementation of it.
    @Test func placementIsPinned() {
        let expected: [(String, [Int: Int])] = [
            ("lobby", [2: 1, 3: 2, 4: 2, 16: 11, 64: 45]),
            ("Lobby", [2: 0, 3: 0, 4: 0, 16: 2, 64: 10]),
            ("deathmatch", [2: 1, 3: 2, 4: 3, 16: 12, 64: 49]),
        ]
        for (room, shards) in expected {
            for (workers, shard) in shards {
                #expect(ShardMap(workerCount: workers).shard(of: room) == shard, "\(room) on \(workers) workers")
            }
        }
    }

    @Test func stableAndInRange() {
        for workers in 1...70 {
            let map = ShardMap(workerCount: workers)
            for name in ["lobby", "deathmatch", "duel", "é", ""] {
                let shard = map.shard(of: name)
                #expect((0..<workers).contains(shard))
                #expect(shard == ShardMap(workerCount: workers).shard(of: name))
            }
        }
    }

    /// 10,000 typical room IDs (numbered, UUIDs, short words) spread over the workers as evenly
    /// as independent random placement would. The bound: no shard further from the mean than
    /// 5 standard deviations of a binomial count (never reached by chance at these sizes), and
    /// within 5 % of the mean where the mean is large enough for that to be meaningful.
    @Test(arguments: [2, 3, 4, 8, 16, 64])
    func typicalRoomIDsSpreadEvenly(workers: Int) {
        var ids: [String] = []
        for index in 0..<4000 { ids.append("room-\(index)") }
        var generator = SplitMix64(seed: 42)
        for _ in 0..<3000 { ids.append(generator.uuid().uuidString.lowercased()) }
        let syllables = ["ka", "zu", "mi", "ro", "ne", "ta", "shi", "po", "la", "ve", "dor", "quin", "ax", "el", "ur"]
        for a in syllables { for b in syllables { for c in syllables where ids.count < 10_000 { ids.append(a + b + c) } } }
        ids.append(contentsOf: (0..<(10_000 - ids.count)).map { "Lobby\($0)" })
        #expect(ids.count == 10_000)

        let map = ShardMap(workerCount: workers)
        var counts = [Int](repeating: 0, count: workers)
        for id in ids { counts[map.shard(of: id)] += 1 }
        let mean = Double(ids.count) / Double(workers)
        let deviation = (mean * (1 - 1 / Double(workers))).squareRoot()
        let worst = counts.map { abs(Double($0) - mean) }.max()!
        #expect(worst <= 5 * deviation, "counts \(counts), mean \(mean)")
        if workers <= 8 { #expect(worst / mean <= 0.05, "counts \(counts)") }
    }

    /// FNV-1a reduced modulo a power of two kept case-only differences on one shard.
    @Test func caseVariantsAreIndependent() {
        let map = ShardMap(workerCount: 32)
        var together = 0
        for index in 0..<3200 where map.shard(of: "lobby\(index)") == map.shard(of: "Lobby\(index)") { together += 1 }
        #expect(together < 200)  // 100 expected by chance (1 in 32)
        #expect(map.shard(of: "lobby") != map.shard(of: "Lobby"))
    }
}

extension SplitMix64 {
    /// A reproducible UUID, so the spread test sees the same IDs every run.
    mutating func uuid() -> UUID {
        let a = next(), b = next()
        return withUnsafeBytes(of: (a, b)) { UUID(uuid: $0.load(as: uuid_t.self)) }
    }
}
