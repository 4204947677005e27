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
        var sizeClass: Int
    }

    private let header: UnsafeMutablePointer<Header>

    package init(header: UnsafeMutablePointer<Header>) {
        self.header = header
    }

    /// A frame of `count` bytes, with one reference owned by the caller; fill it with `bytes`.
    package static func allocate(count: Int, pool: FramePool? = nil) -> SharedFrame {
        if let pool, let frame = pool.take(count: count) { return frame }
        let raw = UnsafeMutableRawPointer.allocate(
            byteCount: MemoryLayout<Header>.stride + count, alignment: MemoryLayout<Header>.alignment)
        let header = raw.bindMemory(to: Header.self, capacity: 1)
        header.initialize(to: Header(references: 1, count: count, pool: nil, sizeClass: -1))
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

    package var bytes: UnsafeMutableRawPointer { UnsafeMutableRawPointer(header + 1) }

    package var count: Int { header.pointee.count }

    package var buffer: UnsafeMutableRawBufferPointer { UnsafeMutableRawBufferPointer(start: bytes, count: count) }

    package func retain() {
        header.pointee.references += 1
    }

    package func release() {
        header.pointee.references -= 1
        guard header.pointee.references == 0 else { return }
        if let pool = header.pointee.pool {
            Unmanaged<FramePool>.fromOpaque(pool)._withUnsafeGuaranteedRef { $0.recycle(header) }
        } else {
            UnsafeMutableRawPointer(header).deallocate()
        }
    }
}

/// A worker's free lists of frame blocks, so relaying a broadcast costs no malloc in steady
/// state. Size classes of 128 B … 4 KiB (header included); larger frames use malloc.
///
/// Invariant: owned by one worker, used only on its thread, and released after every frame that
/// came from it (the worker closes all connections, emptying their outboxes, before it ends).
package final class FramePool {
    private static let classSizes = [128, 256, 512, 1024, 2048, 4096]
    private static let maxFreePerClass = 4096
    private var free: [[UnsafeMutablePointer<SharedFrame.Header>]] = Array(repeating: [], count: classSizes.count)

    package init() {}

    deinit {
        for list in free {
            for header in list { UnsafeMutableRawPointer(header).deallocate() }
        }
    }

    package func take(count: Int) -> SharedFrame? {
        let needed = MemoryLayout<SharedFrame.Header>.stride + count
        guard let sizeClass = Self.classSizes.firstIndex(where: { $0 >= needed }) else { return nil }
        let header = free[sizeClass].popLast() ?? UnsafeMutableRawPointer.allocate(
            byteCount: Self.classSizes[sizeClass], alignment: MemoryLayout<SharedFrame.Header>.alignment
        ).bindMemory(to: SharedFrame.Header.self, capacity: 1)
        header.initialize(to: .init(references: 1, count: count, pool: Unmanaged.passUnretained(self).toOpaque(), sizeClass: sizeClass))
        return SharedFrame(header: header)
    }

    package func recycle(_ header: UnsafeMutablePointer<SharedFrame.Header>) {
        let sizeClass = header.pointee.sizeClass
        if free[sizeClass].count < Self.maxFreePerClass {
            free[sizeClass].append(header)
        } else {
            UnsafeMutableRawPointer(header).deallocate()
        }
    }
}
