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

    package mutating func writeFrameLength(_ length: Int) {
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
enum WireSize {
    static let framePrefix = 4
    static let tag = 4
    static let uuid = 16
    static func bytes(_ count: Int) -> Int { 8 + count }
}
