#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Writes a frame (length prefix and bincode-legacy fields) into memory the caller sized with
/// the matching `...Size` function. Bounds are checked with `assert`: callers compute sizes
/// from the same field lengths they write.
package struct WireWriter {
    private let base: UnsafeMutableRawPointer
    private let capacity: Int
    private(set) var position = 0

    package init(_ buffer: UnsafeMutableRawBufferPointer) {
        self.base = buffer.baseAddress!
        self.capacity = buffer.count
    }

    /// The 4-byte big-endian prefix. A payload that does not fit traps rather than wrap: a
    /// wrapped prefix would make the peer parse the payload's own bytes as frames (forged server
    /// frames, for a relayed broadcast). `ServerConfiguration.maxPayloadLimit` keeps every frame
    /// the server makes within the prefix, and the client checks before it encodes.
    package mutating func writeFrameLength(_ length: Int) {
        precondition(length >= 0 && length <= WireSize.largestPayload, "a frame payload of \(length) bytes does not fit the 4-byte length prefix")
        write(UInt32(truncatingIfNeeded: length).bigEndian)
    }

    mutating func writeUInt32(_ value: UInt32) { write(value.littleEndian) }

    mutating func writeUInt64(_ value: UInt64) { write(value.littleEndian) }

    mutating func writeUUID(_ id: UUID) {
        assert(position + 16 <= capacity)
        withUnsafeBytes(of: id.uuid) { (base + position).copyMemory(from: $0.baseAddress!, byteCount: 16) }
        position += 16
    }

    mutating func writeBytes(_ bytes: UnsafeRawBufferPointer) {
        writeUInt64(UInt64(bytes.count))
        writeRaw(bytes)
    }

    mutating func writeString(_ string: String) {
        var string = string
        string.withUTF8 { writeBytes(UnsafeRawBufferPointer($0)) }
    }

    mutating func writeRaw(_ bytes: UnsafeRawBufferPointer) {
        assert(position + bytes.count <= capacity)
        if let source = bytes.baseAddress, bytes.count > 0 {
            (base + position).copyMemory(from: source, byteCount: bytes.count)
        }
        position += bytes.count
    }

    private mutating func write<T: FixedWidthInteger>(_ value: T) {
        assert(position + MemoryLayout<T>.size <= capacity)
        (base + position).storeBytes(of: value, as: T.self)
        position += MemoryLayout<T>.size
    }
}

/// Sizes of the encoded pieces, shared by every encoder so size and write never disagree.
package enum WireSize {
    static let framePrefix = 4
    /// The largest payload the 4-byte length prefix can state.
    package static let largestPayload = Int(UInt32.max)
    /// How much larger a relayed Broadcast is than the client's Broadcast it carries: the
    /// sender's ID (16 bytes). Every server frame is at most this much larger than the client
    /// frame that caused it (see `ServerConfiguration.maxPayloadLimit`).
    package static let relayOverhead = 16
    static let tag = 4
    static let uuid = 16
    static func bytes(_ count: Int) -> Int { 8 + count }
}
