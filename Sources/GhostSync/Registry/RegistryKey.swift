/// A key of the cluster's room registry (a JetStream key-value bucket, docs/cluster.md).
///
/// | key | value | revision |
/// | --- | --- | --- |
/// | `r.<room token>` | the creating relay's name | the room's cluster-wide generation |
/// | `m.<room token>.<room revision>.<key token>` | a metadata value (UTF-8) | orders writes to the key |
///
/// Tokens are `NATSSubject.token(forRoom:)` (lowercase hex, `_` for the empty string), valid KV
/// key characters for any UTF-8. Metadata keys carry the room's revision, so a room created
/// again under the same ID never reads its predecessor's metadata.
package enum RegistryKey: Hashable, Sendable {
    case room(String)
    case metadata(roomID: String, roomRevision: UInt64, key: String)

    /// The longest KV key the registry writes: subjects must fit nats-server's 4096-byte control
    /// line with the bucket prefix and a reply inbox.
    package static let maxKeyBytes = 3800

    package var kvKey: String {
        switch self {
        case .room(let roomID):
            return "r.\(NATSSubject.token(forRoom: roomID))"
        case .metadata(let roomID, let revision, let key):
            return "m.\(NATSSubject.token(forRoom: roomID)).\(revision).\(NATSSubject.token(forRoom: key))"
        }
    }

    /// The key a KV key names; nil for anything the registry does not write.
    package init?(kvKey: some StringProtocol) {
        let parts = kvKey.split(separator: ".", omittingEmptySubsequences: false)
        switch (parts.first, parts.count) {
        case ("r"?, 2):
            guard let roomID = NATSSubject.roomID(fromToken: parts[1]) else { return nil }
            self = .room(roomID)
        case ("m"?, 4):
            guard let roomID = NATSSubject.roomID(fromToken: parts[1]), let revision = UInt64(parts[2]),
                  let key = NATSSubject.roomID(fromToken: parts[3]) else { return nil }
            self = .metadata(roomID: roomID, roomRevision: revision, key: key)
        default:
            return nil
        }
    }

    var roomID: String {
        switch self {
        case .room(let roomID), .metadata(let roomID, _, _): return roomID
        }
    }
}
