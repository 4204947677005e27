import Glibc

/// One client's outgoing frames: a ring of `SharedFrame` references, bounded by
/// `channelCapacity`, drained with `writev`.
///
/// Memory: one frame fits inline (`single`), so a connection that never has two frames queued at
/// once (an idle one, or one that is written out every iteration) allocates nothing. The second
/// queued frame brings 16 slots; they double up to the capacity under a burst. A drained ring
/// keeps its storage, so a busy connection does not reallocate on every burst (S3 queues up to
/// 72 frames per client per iteration: with larger storage given back at every drain, as
/// before, `grow` and `free` ran on most flushes). Storage over 64 slots (512 bytes) is given
/// back by `releaseSpareStorage`, which the worker calls from the connection's liveness timer
/// (every ping interval) when nothing is queued. Appending into existing storage allocates
/// nothing.
/// Invariant: owned by one worker at a time, like the frames it references. Without storage,
/// `count` is 0 or 1 and `single` holds the retained frame; with storage, `storage[head...]`
/// (wrapping) holds `count` retained frames and `single` is nil. `headOffset` bytes of the first
/// frame are written.
package struct Outbox: ~Copyable {
    private var storage: UnsafeMutablePointer<SharedFrame>?
    /// The one frame queued while there is no storage.
    private var single: SharedFrame?
    /// Bytes of the head frame already written to the socket.
    private var headOffset = 0
    // 32-bit: a queue holds at most `channelCapacity` frames, and an idle connection's size is
    // a target (docs/performance.md, S4).
    private var slotCount: UInt32 = 0
    private var headIndex: UInt32 = 0
    private var queued: UInt32 = 0

    private var slots: Int {
        get { Int(slotCount) }
        set { slotCount = UInt32(newValue) }
    }
    private var head: Int {
        get { Int(headIndex) }
        set { headIndex = UInt32(truncatingIfNeeded: newValue) }
    }
    private(set) var count: Int {
        get { Int(queued) }
        set { queued = UInt32(newValue) }
    }
    private static let initialSlots = 16
    private static let keptSlots = 64

    package init() {}

    deinit {
        for index in 0..<count { frame(at: index).release() }
        storage?.deallocate()
    }

    /// The frame `offset` places after the head.
    @inline(__always)
    private func frame(at offset: Int) -> SharedFrame {
        guard let storage else { return single! }
        return storage[(head + offset) & (slots - 1)]
    }

    package var isEmpty: Bool { count == 0 }

    /// Slots of ring storage held (0 while at most one frame has been queued at a time).
    package var allocatedSlots: Int { slots }

    /// Queues a frame (retaining it).
    @inline(__always)
    package mutating func append(_ frame: SharedFrame) {
        frame.retain()
        appendTakingReference(frame)
    }

    /// Queues a frame whose reference for this queue the caller has taken or takes right after
    /// (the fan-out adds one reference per recipient in a single `SharedFrame.retain(count:)`
    /// once its loop is done). Sound because nothing writes or consumes any queue during that
    /// loop (flushes only run from the loop's flush list, and hooks cannot close connections
    /// inline), and the caller holds its own reference throughout, so the frame cannot reach
    /// zero references before they are added.
    @inline(__always)
    package mutating func appendTakingReference(_ frame: SharedFrame) {
        // One comparison for the common case: `queued < slotCount` implies storage (without
        // it `slotCount` is 0). 32-bit index arithmetic, as the fields are.
        if queued < slotCount {
            storage.unsafelyUnwrapped[Int((headIndex &+ queued) & (slotCount &- 1))] = frame
            queued &+= 1  // at most `channelCapacity` frames: no overflow
            return
        }
        appendGrowing(frame)
    }

    @inline(never)
    private mutating func appendGrowing(_ frame: SharedFrame) {
        if storage == nil && count == 0 {
            single = frame
            count = 1
            return
        }
        grow()
        storage![(head &+ count) & (slots &- 1)] = frame
        queued &+= 1
    }

    /// Fills `vectors` with the unsent bytes, oldest first; returns how many vectors and bytes.
    /// The ring case walks the slots with its position in a register and no per-frame branch;
    /// the head frame's written part is taken off afterwards.
    @inline(__always)
    package func gather(into vectors: UnsafeMutablePointer<iovec>, limit: Int) -> (vectors: Int, bytes: Int) {
        let used = min(count, limit)
        guard used > 0 else { return (0, 0) }
        guard let storage else {
            let frame = single!
            vectors[0] = iovec(iov_base: frame.bytes + headOffset, iov_len: frame.count - headOffset)
            return (1, frame.count - headOffset)
        }
        let mask = slots &- 1
        var index = head
        var total = 0
        for slot in 0..<used {
            let frame = storage[index]
            let length = frame.count
            vectors[slot] = iovec(iov_base: frame.bytes, iov_len: length)
            total &+= length  // at most IOV_MAX frames of a bounded size
            index = (index &+ 1) & mask
        }
        if headOffset > 0 {
            vectors[0].iov_base += headOffset
            vectors[0].iov_len -= headOffset
            total -= headOffset
        }
        return (used, total)
    }

    /// As `gather`, for a WebSocket client: a relay frame goes out as one binary message, its
    /// WebSocket header (written into `headers`, `headerStride` bytes per frame, from the
    /// payload length alone) and then its payload without the TCP length prefix. So one
    /// encoded frame serves both transports, and nothing is copied per recipient. A verbatim
    /// frame goes out as it is. `headOffset` counts bytes of the head frame's wire form.
    /// `frames`: how many frames the vectors hold (a relay frame takes two, header and payload).
    @inline(__always)
    package func gatherWebSocket(into vectors: UnsafeMutablePointer<iovec>, headers: UnsafeMutableRawPointer, limit: Int) -> (vectors: Int, bytes: Int, frames: Int) {
        var used = 0
        var total = 0
        var index = 0
        while index < count && used + 2 <= limit {
            let frame = frame(at: index)
            var skip = index == 0 ? headOffset : 0
            if frame.isVerbatim {
                vectors[used] = iovec(iov_base: frame.bytes + skip, iov_len: frame.count - skip)
                used += 1
                total += frame.count - skip
            } else {
                let payloadLength = frame.count - WireSize.framePrefix
                let header = headers + index * Self.headerStride
                let headerSize = WebSocketFrame.writeServerHeader(opcode: .binary, payloadLength: payloadLength, to: header)
                if skip < headerSize {
                    vectors[used] = iovec(iov_base: header + skip, iov_len: headerSize - skip)
                    used += 1
                    total += headerSize - skip
                    skip = 0
                } else {
                    skip -= headerSize
                }
                vectors[used] = iovec(iov_base: frame.bytes + WireSize.framePrefix + skip, iov_len: payloadLength - skip)
                used += 1
                total += payloadLength - skip
            }
            index += 1
        }
        return (used, total, index)
    }

    /// Bytes per frame `gatherWebSocket` may write into its `headers` scratch.
    package static let headerStride = 16

    /// A frame's size on a WebSocket connection.
    @inline(__always)
    private static func webSocketWireSize(of frame: SharedFrame) -> Int {
        if frame.isVerbatim { return frame.count }
        let payloadLength = frame.count - WireSize.framePrefix
        return WebSocketFrame.serverHeaderSize(payloadLength: payloadLength) + payloadLength
    }

    /// Records that `written` bytes went out, releasing the frames that are now fully sent.
    @inline(__always)
    package mutating func consume(_ written: Int) {
        consume(written) { $0.count }
    }

    /// Records that the first `frames` queued frames went out whole (a write that took every
    /// byte `gather` or `gatherWebSocket` offered: `frames` is the number they gathered),
    /// releasing them. The common case of
    /// `consume`, without a size lookup and a comparison per frame, and with the ring's
    /// position kept in registers instead of written back per frame.
    @inline(__always)
    package mutating func consumeWhole(frames: Int) {
        guard let storage else {
            popHead()  // no ring: at most one frame, held inline
            return
        }
        headOffset = 0
        let mask = slots &- 1
        var index = head
        for _ in 0..<frames {
            storage[index].release()
            index = (index &+ 1) & mask
        }
        count = count &- frames  // `frames` ≤ `count`: gathered from this queue
        head = count == 0 ? 0 : index
    }

    /// `consume` for bytes gathered by `gatherWebSocket`.
    package mutating func consumeWebSocket(_ written: Int) {
        consume(written, wireSize: Self.webSocketWireSize(of:))
    }

    @inline(__always)
    private mutating func consume(_ written: Int, wireSize: (SharedFrame) -> Int) {
        var remaining = written
        while remaining > 0 {
            let left = wireSize(frame(at: 0)) - headOffset
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

    /// The unsent bytes, in the connection's wire format, as one private array (for a handoff
    /// to another worker), emptying the box.
    package mutating func takeUnsentBytes(webSocket: Bool = false) -> [UInt8] {
        var bytes: [UInt8] = []
        for index in 0..<count {
            let frame = frame(at: index)
            var wire: [UInt8] = []
            if webSocket && !frame.isVerbatim {
                let payloadLength = frame.count - WireSize.framePrefix
                var header = (UInt64(0), UInt64(0))
                let headerSize = withUnsafeMutableBytes(of: &header) {
                    WebSocketFrame.writeServerHeader(opcode: .binary, payloadLength: payloadLength, to: $0.baseAddress!)
                }
                withUnsafeBytes(of: &header) { wire.append(contentsOf: $0.prefix(headerSize)) }
                wire.append(contentsOf: UnsafeRawBufferPointer(start: frame.bytes + WireSize.framePrefix, count: payloadLength))
            } else {
                wire.append(contentsOf: UnsafeRawBufferPointer(start: frame.bytes, count: frame.count))
            }
            bytes.append(contentsOf: wire[(index == 0 ? headOffset : 0)...])
        }
        removeAll()
        return bytes
    }

    @inline(__always)
    private mutating func popHead() {
        headOffset = 0
        guard let storage else {
            single!.release()
            single = nil
            count = 0
            return
        }
        storage[head].release()
        head = (head + 1) & (slots - 1)
        count -= 1
    }

    private mutating func grow() {
        let newSlots = slots == 0 ? Self.initialSlots : slots * 2
        let newStorage = UnsafeMutablePointer<SharedFrame>.allocate(capacity: newSlots)
        for index in 0..<count {
            (newStorage + index).initialize(to: frame(at: index))
        }
        single = nil
        storage?.deallocate()
        storage = newStorage
        slots = newSlots
        head = 0
    }

    @inline(__always)
    private mutating func shrinkIfDrained() {
        if count == 0 { head = 0 }
    }

    /// Gives back ring storage over 64 slots when nothing is queued (the liveness timer calls
    /// this; a drain alone keeps the storage for the next burst).
    package mutating func releaseSpareStorage() {
        guard count == 0, slots > Self.keptSlots else { return }
        storage?.deallocate()
        storage = nil
        slots = 0
        head = 0
    }
}
