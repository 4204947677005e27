import Testing
@testable import GhostSync

@Suite struct ShardMapTests {
    @Test func fnv1aReferenceValues() {
        // Published FNV-1a 64-bit test values.
        #expect(ShardMap.fnv1a("") == 0xcbf2_9ce4_8422_2325)
        #expect(ShardMap.fnv1a("a") == 0xaf63_dc4c_8601_ec8c)
        #expect(ShardMap.fnv1a("foobar") == 0x8594_4171_f739_67e8)
    }

    @Test func stableAndInRange() {
        for workers in 1...8 {
            let map = ShardMap(workerCount: workers)
            for name in ["lobby", "deathmatch", "duel", "é", ""] {
                let shard = map.shard(of: name)
                #expect((0..<workers).contains(shard))
                #expect(shard == Int(ShardMap.fnv1a(name) % UInt64(workers)))
            }
        }
    }

    @Test func roomsSpreadOverShards() {
        let map = ShardMap(workerCount: 4)
        var counts = [0, 0, 0, 0]
        for index in 0..<4000 { counts[map.shard(of: "room-\(index)")] += 1 }
        #expect(counts.allSatisfy { $0 > 800 })
    }
}
