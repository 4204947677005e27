import Glibc

/// One client's outgoing frames: a ring of `SharedFrame` references, bounded by
/// `channelCapacity`, drained with `writev`.
///
/// Memory: no storage at all until the first frame is queued; 16 slots after that; doubling up
/// to the capacity under a burst. Once drained it keeps up to 64 slots (512 bytes), so a busy
/// connection does not reallocate on every burst, and gives larger storage back, so an idle
/// connection stays small. Appending into existing storage allocates nothing.
/// Invariant: owned by one worker at a time, like the frames it references; `storage[head...]`
/// (wrapping) holds `count` retained frames, and `headOffset` bytes of the first are written.
package struct Outbox: ~Copyable {
    private var storage: UnsafeMutablePointer<SharedFrame>?
    private var slots = 0
    private var head = 0
    private(set) var count = 0
    /// Bytes of the head frame already written to the socket.
    private var headOffset = 0
    private static let initialSlots = 16
    private static let keptSlots = 64

    package init() {}

    deinit {
        for index in 0..<count {
            storage![(head + index) & (slots - 1)].release()
        }
        storage?.deallocate()
    }

    package var isEmpty: Bool { count == 0 }

    /// Queues a frame (retaining it).
    @inline(__always)
    package mutating func append(_ frame: SharedFrame) {
        if count == slots { grow() }
        storage![(head + count) & (slots - 1)] = frame
        frame.retain()
        count += 1
    }

    /// Fills `vectors` with the unsent bytes, oldest first; returns how many vectors and bytes.
    @inline(__always)
    package func gather(into vectors: UnsafeMutablePointer<iovec>, limit: Int) -> (vectors: Int, bytes: Int) {
        let used = min(count, limit)
        var total = 0
        for index in 0..<used {
            let frame = storage![(head + index) & (slots - 1)]
            let skip = index == 0 ? headOffset : 0
            vectors[index] = iovec(iov_base: frame.bytes + skip, iov_len: frame.count - skip)
            total += frame.count - skip
        }
        return (used, total)
    }

    /// Records that `written` bytes went out, releasing the frames that are now fully sent.
    @inline(__always)
    package mutating func consume(_ written: Int) {
        var remaining = written
        while remaining > 0 {
            let frame = storage![head]
            let left = frame.count - headOffset
            if remaining < left {
                headOffset += remaining
                return
            }
            remaining -= left
            popHead()
        }
        shrinkIfDrained()
    }

    /// Releases every queued frame.
    package mutating func removeAll() {
        while count > 0 { popHead() }
        shrinkIfDrained()
    }

    /// The unsent bytes as one private array (for a handoff to another worker), emptying the box.
    package mutating func takeUnsentBytes() -> [UInt8] {
        var bytes: [UInt8] = []
        for index in 0..<count {
            let frame = storage![(head + index) & (slots - 1)]
            let skip = index == 0 ? headOffset : 0
            bytes.append(contentsOf: UnsafeRawBufferPointer(start: frame.bytes + skip, count: frame.count - skip))
        }
        removeAll()
        return bytes
    }

    @inline(__always)
    private mutating func popHead() {
        storage![head].release()
        head = (head + 1) & (slots - 1)
        count -= 1
        headOffset = 0
    }

    private mutating func grow() {
        let newSlots = slots == 0 ? Self.initialSlots : slots * 2
        let newStorage = UnsafeMutablePointer<SharedFrame>.allocate(capacity: newSlots)
        for index in 0..<count {
            (newStorage + index).initialize(to: storage![(head + index) & (slots - 1)])
        }
        storage?.deallocate()
        storage = newStorage
        slots = newSlots
        head = 0
    }

    private mutating func shrinkIfDrained() {
        guard count == 0, slots > Self.keptSlots else {
            if count == 0 { head = 0 }
            return
        }
        storage?.deallocate()
        storage = nil
        slots = 0
        head = 0
    }
}
