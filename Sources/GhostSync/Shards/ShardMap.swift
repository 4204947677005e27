/// Which worker owns a room: FNV-1a (64-bit) of the room ID's UTF-8 bytes, modulo the worker
/// count. Stable across processes and runs, so an operator can predict placement.
struct ShardMap: Sendable {
    let workerCount: Int

    func shard(of roomID: String) -> Int {
        Int(Self.fnv1a(roomID) % UInt64(workerCount))
    }

    static func fnv1a(_ text: String) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in text.utf8 {
            hash ^= UInt64(byte)
            hash &*= 0x0000_0100_0000_01b3
        }
        return hash
    }
}
