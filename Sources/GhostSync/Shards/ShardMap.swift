/// Which worker owns a room. Stable across processes, runs and machines, so an operator can
/// predict placement; changing it moves rooms, so it is fixed and documented
/// (docs/architecture.md, "Shard placement"):
///
/// 1. FNV-1a 64 of the room ID's UTF-8 bytes,
/// 2. finalised with MurmurHash3's 64-bit mix (`fmix64`), so that every output bit depends on
///    every input bit (FNV-1a alone leaves the low bits a function of the low bits of each byte:
///    "Lobby" and "lobby" shared a shard for every power-of-two worker count up to 32),
/// 3. reduced to `0..<workerCount` by a multiply-high (`hash × count >> 64`), which uses the
///    well-mixed high bits and needs no division.
struct ShardMap: Sendable {
    let workerCount: Int

    func shard(of roomID: String) -> Int {
        Self.shard(ofHash: Self.mix(Self.fnv1a(roomID)), workerCount: workerCount)
    }

    static func shard(ofHash hash: UInt64, workerCount: Int) -> Int {
        Int(hash.multipliedFullWidth(by: UInt64(workerCount)).high)
    }

    static func fnv1a(_ text: String) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in text.utf8 {
            hash ^= UInt64(byte)
            hash &*= 0x0000_0100_0000_01b3
        }
        return hash
    }

    /// MurmurHash3's `fmix64` finaliser: a bijection with full avalanche.
    static func mix(_ value: UInt64) -> UInt64 {
        var hash = value
        hash ^= hash >> 33
        hash &*= 0xff51_afd7_ed55_8ccd
        hash ^= hash >> 33
        hash &*= 0xc4ce_b9fe_1a85_ec53
        hash ^= hash >> 33
        return hash
    }
}
