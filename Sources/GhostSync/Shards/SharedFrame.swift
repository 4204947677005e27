/// An encoded frame shared by every recipient's outbox on one worker: a broadcast is encoded
/// once and each recipient's queue holds a reference to the same bytes.
///
/// Memory: one block holds a header (reference count, byte count, the pool it came from) followed
/// by the frame bytes; blocks come from the worker's `FramePool` when given one.
/// Invariant: a frame is made, retained, released and freed by one worker thread only; it never
/// crosses threads (a handoff copies the bytes still queued into a new private frame). That is
/// why the reference count is a plain, non-atomic integer.
package struct SharedFrame {
    package struct Header {
        var references: Int
        var count: Int
        /// The `FramePool` to return the block to (unretained; the pool outlives its frames),
        /// or nil for a plain allocation.
        var pool: UnsafeMutableRawPointer?
        var sizeClass: Int32
        /// Sent as it is on every transport. Relay frames (false) carry the TCP framing's length
        /// prefix, which a WebSocket client's outbox replaces with a WebSocket header; verbatim
        /// frames are already in their connection's wire format (HTTP answers, WebSocket
        /// control frames and echoes, bytes carried over a handoff).
        var isVerbatim: Bool
    }

    private let header: UnsafeMutablePointer<Header>

    package init(header: UnsafeMutablePointer<Header>) {
        self.header = header
    }

    /// A frame of `count` bytes, with one reference owned by the caller; fill it with `bytes`.
    package static func allocate(count: Int, pool: FramePool? = nil) -> SharedFrame {
        if let pool { return pool.frame(count: count) }
        let raw = UnsafeMutableRawPointer.allocate(
            byteCount: MemoryLayout<Header>.stride + count, alignment: MemoryLayout<Header>.alignment)
        let header = raw.bindMemory(to: Header.self, capacity: 1)
        header.initialize(to: Header(references: 1, count: count, pool: nil, sizeClass: -1, isVerbatim: false))
        return SharedFrame(header: header)
    }

    /// A frame holding a copy of `bytes`.
    package static func copying(_ bytes: UnsafeRawBufferPointer, pool: FramePool? = nil) -> SharedFrame {
        let frame = allocate(count: bytes.count, pool: pool)
        if let source = bytes.baseAddress, bytes.count > 0 {
            frame.bytes.copyMemory(from: source, byteCount: bytes.count)
        }
        return frame
    }

    /// A frame holding `message`, encoded.
    package static func encoding(_ message: ServerWire, pool: FramePool? = nil) -> SharedFrame {
        let frame = allocate(count: WireSize.framePrefix + message.payloadSize, pool: pool)
        var writer = WireWriter(frame.buffer)
        message.writeFrame(into: &writer)
        return frame
    }

    /// A frame already in its connection's wire format (see `Header.isVerbatim`), holding a
    /// copy of `bytes`.
    package static func verbatim(_ bytes: UnsafeRawBufferPointer, pool: FramePool? = nil) -> SharedFrame {
        let frame = copying(bytes, pool: pool)
        frame.isVerbatim = true
        return frame
    }

    /// A relay frame (TCP framing) as one verbatim binary WebSocket message: the header, then
    /// the payload without the length prefix; the caller owns the new frame.
    package static func webSocketFraming(of frame: SharedFrame, pool: FramePool) -> SharedFrame {
        let payloadLength = frame.count - WireSize.framePrefix
        let headerSize = WebSocketFrame.serverHeaderSize(payloadLength: payloadLength)
        let framed = pool.frame(count: headerSize + payloadLength)
        framed.isVerbatim = true
        WebSocketFrame.writeServerHeader(opcode: .binary, payloadLength: payloadLength, to: framed.bytes)
        (framed.bytes + headerSize).copyMemory(from: frame.bytes + WireSize.framePrefix, byteCount: payloadLength)
        return framed
    }

    package var bytes: UnsafeMutableRawPointer { UnsafeMutableRawPointer(header + 1) }

    package var isVerbatim: Bool {
        get { header.pointee.isVerbatim }
        nonmutating set { header.pointee.isVerbatim = newValue }
    }

    package var count: Int { header.pointee.count }

    package var buffer: UnsafeMutableRawBufferPointer { UnsafeMutableRawBufferPointer(start: bytes, count: count) }

    package func retain() {
        header.pointee.references += 1
    }

    /// Adds `count` references at once (one per recipient of a fan-out).
    @inline(__always)
    package func retain(count: Int) {
        header.pointee.references += count
    }

    @inline(__always)
    package func release() {
        // Never below zero: every release pairs with a reference held.
        header.pointee.references &-= 1
        guard header.pointee.references == 0 else { return }
        if let pool = header.pointee.pool {
            Unmanaged<FramePool>.fromOpaque(pool)._withUnsafeGuaranteedRef { $0.recycle(header) }
        } else {
            UnsafeMutableRawPointer(header).deallocate()
        }
    }
}

/// A worker's free lists of frame blocks, so relaying a broadcast costs no malloc in steady
/// state. Size classes of 128 B … 4 KiB (header included, powers of two); larger frames use
/// malloc.
///
/// Each free list is intrusive: a free block's header `pool` field links to the next free block
/// of its class, so taking and recycling are a few loads and stores, with no array and no call.
/// Invariant: owned by one worker, used only on its thread, and released after every frame that
/// came from it (the worker closes all connections, emptying their outboxes, before it ends);
/// `heads[c]` starts a chain of `freeCounts[c]` blocks of `128 << c` bytes.
package final class FramePool {
    private static let classCount = 6
    private static let smallestClassShift = 7  // 128 bytes
    private static let maxFreePerClass = 4096
    private let heads = UnsafeMutablePointer<UnsafeMutablePointer<SharedFrame.Header>?>.allocate(capacity: classCount)
    private let freeCounts = UnsafeMutablePointer<Int>.allocate(capacity: classCount)

    package init() {
        heads.initialize(repeating: nil, count: Self.classCount)
        freeCounts.initialize(repeating: 0, count: Self.classCount)
    }

    deinit {
        for sizeClass in 0..<Self.classCount {
            var next = heads[sizeClass]
            while let header = next {
                next = header.pointee.pool?.assumingMemoryBound(to: SharedFrame.Header.self)
                UnsafeMutableRawPointer(header).deallocate()
            }
        }
        heads.deallocate()
        freeCounts.deallocate()
    }

    /// The size class for a block of `bytes` (header included), or nil when it is over 4 KiB.
    @inline(__always)
    static func sizeClass(forBlockOf bytes: Int) -> Int? {
        guard bytes <= 1 << (smallestClassShift + classCount - 1) else { return nil }
        // Smallest power of two ≥ bytes, relative to 128 B.
        let shift = bytes <= 1 ? 0 : Int.bitWidth - (bytes - 1).leadingZeroBitCount
        return max(0, shift - smallestClassShift)
    }

    /// A frame of `count` bytes with one reference owned by the caller: a pooled block, or a
    /// plain allocation when it is too big for the pool. The relay path calls this on the pool
    /// directly (not through `SharedFrame.allocate`), which spares a retain of the pool.
    @inline(__always)
    package func frame(count: Int) -> SharedFrame {
        take(count: count) ?? SharedFrame.allocate(count: count)
    }

    @inline(__always)
    package func take(count: Int) -> SharedFrame? {
        guard let sizeClass = Self.sizeClass(forBlockOf: MemoryLayout<SharedFrame.Header>.stride + count) else { return nil }
        let header: UnsafeMutablePointer<SharedFrame.Header>
        if let free = heads[sizeClass] {
            header = free
            heads[sizeClass] = free.pointee.pool?.assumingMemoryBound(to: SharedFrame.Header.self)
            freeCounts[sizeClass] -= 1
        } else {
            header = UnsafeMutableRawPointer.allocate(
                byteCount: 1 << (Self.smallestClassShift + sizeClass), alignment: MemoryLayout<SharedFrame.Header>.alignment
            ).bindMemory(to: SharedFrame.Header.self, capacity: 1)
        }
        header.initialize(to: .init(
            references: 1, count: count, pool: Unmanaged.passUnretained(self).toOpaque(), sizeClass: Int32(sizeClass), isVerbatim: false))
        return SharedFrame(header: header)
    }

    @inline(__always)
    package func recycle(_ header: UnsafeMutablePointer<SharedFrame.Header>) {
        let sizeClass = Int(header.pointee.sizeClass)
        guard freeCounts[sizeClass] < Self.maxFreePerClass else {
            UnsafeMutableRawPointer(header).deallocate()
            return
        }
        header.pointee.pool = heads[sizeClass].map(UnsafeMutableRawPointer.init)
        heads[sizeClass] = header
        freeCounts[sizeClass] += 1
    }
}
