import Testing
@testable import GhostSync

/// The worker's frame pool: size classes by arithmetic, intrusive free lists, block reuse.
@Suite struct FramePoolTests {
    @Test func sizeClassesArePowersOfTwoFrom128Bytes() {
        #expect(FramePool.sizeClass(forBlockOf: 1) == 0)
        #expect(FramePool.sizeClass(forBlockOf: 128) == 0)
        #expect(FramePool.sizeClass(forBlockOf: 129) == 1)
        #expect(FramePool.sizeClass(forBlockOf: 256) == 1)
        #expect(FramePool.sizeClass(forBlockOf: 257) == 2)
        #expect(FramePool.sizeClass(forBlockOf: 2049) == 5)
        #expect(FramePool.sizeClass(forBlockOf: 4096) == 5)
        #expect(FramePool.sizeClass(forBlockOf: 4097) == nil)
    }

    @Test func releasedBlocksAreReusedLastInFirstOut() {
        let pool = FramePool()
        let first = SharedFrame.allocate(count: 40, pool: pool)
        let second = SharedFrame.allocate(count: 40, pool: pool)
        let firstAddress = first.bytes
        let secondAddress = second.bytes
        first.release()
        second.release()
        let again = SharedFrame.allocate(count: 60, pool: pool)  // same class (≤ 128 B with header)
        let andAgain = SharedFrame.allocate(count: 10, pool: pool)
        #expect(again.bytes == secondAddress)
        #expect(andAgain.bytes == firstAddress)
        #expect(again.count == 60 && andAgain.count == 10)
        // Another class does not take from this list.
        let larger = SharedFrame.allocate(count: 200, pool: pool)
        #expect(larger.bytes != firstAddress && larger.bytes != secondAddress)
        again.release()
        andAgain.release()
        larger.release()
    }

    @Test func framesOverFourKilobytesBypassThePool() {
        let pool = FramePool()
        let big = SharedFrame.allocate(count: 10_000, pool: pool)
        big.buffer.initializeMemory(as: UInt8.self, repeating: 7)
        #expect(big.count == 10_000)
        big.release()  // freed, not pooled: the pool's deinit must not see it
    }

    @Test func sharedFrameReturnsToThePoolOnlyAfterTheLastReference() {
        let pool = FramePool()
        let frame = SharedFrame.allocate(count: 20, pool: pool)
        let address = frame.bytes
        frame.retain()
        frame.release()
        let other = SharedFrame.allocate(count: 20, pool: pool)
        #expect(other.bytes != address)  // still referenced: not reusable yet
        frame.release()
        let reused = SharedFrame.allocate(count: 20, pool: pool)
        #expect(reused.bytes == address)
        other.release()
        reused.release()
    }
}
