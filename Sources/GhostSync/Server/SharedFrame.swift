/// An encoded frame shared by every recipient's outbox on one worker: a broadcast is encoded
/// once and each recipient's queue holds a reference to the same bytes.
///
/// Memory: one malloc holds a header (reference count, byte count) followed by the frame bytes.
/// Invariant: a frame is made, retained, released and freed by one worker thread only; it never
/// crosses threads (a handoff copies the bytes still queued into a new private frame). That is
/// why the reference count is a plain, non-atomic integer.
struct SharedFrame {
    private struct Header {
        var references: Int
        var count: Int
    }

    private let header: UnsafeMutablePointer<Header>

    /// A frame of `count` bytes, with one reference owned by the caller; fill it with `bytes`.
    static func allocate(count: Int) -> SharedFrame {
        let raw = UnsafeMutableRawPointer.allocate(
            byteCount: MemoryLayout<Header>.stride + count, alignment: MemoryLayout<Header>.alignment)
        let header = raw.bindMemory(to: Header.self, capacity: 1)
        header.initialize(to: Header(references: 1, count: count))
        return SharedFrame(header: header)
    }

    /// A frame holding a copy of `bytes`.
    static func copying(_ bytes: UnsafeRawBufferPointer) -> SharedFrame {
        let frame = allocate(count: bytes.count)
        if let source = bytes.baseAddress, bytes.count > 0 {
            frame.bytes.copyMemory(from: source, byteCount: bytes.count)
        }
        return frame
    }

    /// A frame holding `message`, encoded.
    static func encoding(_ message: ServerWire) -> SharedFrame {
        let frame = allocate(count: WireSize.framePrefix + message.payloadSize)
        var writer = WireWriter(frame.buffer)
        message.writeFrame(into: &writer)
        return frame
    }

    var bytes: UnsafeMutableRawPointer { UnsafeMutableRawPointer(header + 1) }

    var count: Int { header.pointee.count }

    var buffer: UnsafeMutableRawBufferPointer { UnsafeMutableRawBufferPointer(start: bytes, count: count) }

    func retain() {
        header.pointee.references += 1
    }

    func release() {
        header.pointee.references -= 1
        if header.pointee.references == 0 {
            UnsafeMutableRawPointer(header).deallocate()
        }
    }
}
