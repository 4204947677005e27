import Synchronization

/// The unit of false sharing this package pads to, in bytes.
///
/// 128, not 64: x86-64 lines are 64 bytes, but Intel's L2 "adjacent line" prefetcher fetches
/// lines in 128-byte-aligned pairs, so two cores writing neighbouring lines still slow each
/// other down (folly's `hardware_destructive_interference_size` and crossbeam's `CachePadded`
/// use 128 on x86-64 for this reason); on arm64 some cores have 128-byte lines.
package enum CacheLine {
    package static let size = 128

    /// `byteCount` rounded up to a whole number of `size` blocks.
    package static func roundUp(_ byteCount: Int) -> Int {
        (byteCount + size - 1) / size * size
    }
}

/// A fixed number of `Atomic<Int>` cells in a block of cache lines of their own.
///
/// Why: cells that one thread writes and others read (a worker's published counters, a
/// mailbox's doorbell) must not share a cache line with another worker's cells, or every write
/// by one worker invalidates a line the other is using (false sharing). Small objects allocated
/// one after another sit side by side in the heap, so each block is allocated by hand,
/// `CacheLine.size`-aligned and rounded up to whole lines: nothing else can live in its lines.
///
/// Invariant (the only unsafe code here): `cells` points to `count` initialised atomics at the
/// start of a block of `byteCount` bytes aligned to `CacheLine.size`, owned by this object and
/// freed in `deinit`. The cells themselves are atomics, so any thread may use them.
package final class AtomicCells: Sendable {
    package let count: Int
    /// Bytes in the block: `count` cells rounded up to whole lines.
    package let byteCount: Int
    nonisolated(unsafe) private let cells: UnsafeMutablePointer<Atomic<Int>>

    package init(count: Int) {
        precondition(count > 0)
        self.count = count
        byteCount = CacheLine.roundUp(count * MemoryLayout<Atomic<Int>>.stride)
        let block = UnsafeMutableRawPointer.allocate(byteCount: byteCount, alignment: CacheLine.size)
        block.initializeMemory(as: UInt8.self, repeating: 0, count: byteCount)
        cells = block.bindMemory(to: Atomic<Int>.self, capacity: count)
        for index in 0..<count { (cells + index).initialize(to: Atomic(0)) }
    }

    deinit {
        cells.deinitialize(count: count)
        UnsafeMutableRawPointer(cells).deallocate()
    }

    /// Where the block starts, for layout checks in tests (never dereferenced through this).
    package var address: UInt { UInt(bitPattern: cells) }

    /// Cell `index` (`0..<count`), borrowed in place: `cells[0].load(ordering: .acquiring)`.
    /// (A forwarding method could not take the ordering as a parameter: atomic orderings must
    /// be constants at the call.)
    package subscript(index: Int) -> Atomic<Int> {
        unsafeAddress {
            precondition(index >= 0 && index < count)
            return UnsafePointer(cells + index)
        }
    }
}
