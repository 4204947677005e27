#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Reads bincode-legacy fields from a borrowed payload. Byte fields come back as ranges of the
/// payload, so relaying a broadcast copies its data once, straight into the outgoing frame.
///
/// Invariant: a `WireReader` lives only inside the caller's `withUnsafeBytes` scope (or the
/// engine's read pass), so `bytes` is valid for its whole life.
struct WireReader {
    let bytes: UnsafeRawBufferPointer
    private(set) var position = 0

    init(_ bytes: UnsafeRawBufferPointer) {
        self.bytes = bytes
    }

    var remaining: Int { bytes.count - position }

    mutating func readUInt32() throws(WireError) -> UInt32 {
        guard remaining >= 4 else { throw .truncated }
        let value = bytes.loadUnaligned(fromByteOffset: position, as: UInt32.self)
        position += 4
        return UInt32(littleEndian: value)
    }

    mutating func readUInt64() throws(WireError) -> UInt64 {
        guard remaining >= 8 else { throw .truncated }
        let value = bytes.loadUnaligned(fromByteOffset: position, as: UInt64.self)
        position += 8
        return UInt64(littleEndian: value)
    }

    mutating func readUUID() throws(WireError) -> UUID {
        guard remaining >= 16 else { throw .truncated }
        var raw: uuid_t = (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        withUnsafeMutableBytes(of: &raw) { destination in
            destination.copyMemory(from: UnsafeRawBufferPointer(rebasing: bytes[position..<position + 16]))
        }
        position += 16
        return UUID(uuid: raw)
    }

    /// A `Vec<u8>` field: UInt64 length then the bytes, returned as a view into the payload.
    mutating func readBytes() throws(WireError) -> UnsafeRawBufferPointer {
        let length = try readUInt64()
        guard length <= UInt64(remaining) else { throw .truncated }
        let start = position
        position += Int(length)
        return UnsafeRawBufferPointer(rebasing: bytes[start..<position])
    }

    mutating func readString() throws(WireError) -> String {
        let raw = try readBytes()
        guard let decoded = String(validating: raw, as: UTF8.self) else { throw .invalidUTF8 }
        return decoded
    }

    /// Bincode payloads must be consumed exactly.
    func expectEnd() throws(WireError) {
        if remaining != 0 { throw .trailingBytes(remaining) }
    }
}
