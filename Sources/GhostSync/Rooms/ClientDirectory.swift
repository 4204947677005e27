#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Every connected client, by ID, readable from any thread. Striped by ID so that accepts and
/// closes on different workers rarely contend; touched only on connect, disconnect and queries.
final class ClientDirectory: Sendable {
    private let clients = StripedDictionary<UUID, ClientRecord>(stripeCount: 16)

    private func stripe(for id: UUID) -> Int { Int(id.uuid.15 & 15) }

    func insert(_ record: ClientRecord) {
        clients.withStripe(stripe(for: record.id)) { $0[record.id] = record }
    }

    func remove(_ id: UUID) {
        _ = clients.withStripe(stripe(for: id)) { $0.removeValue(forKey: id) }
    }

    func record(_ id: UUID) -> ClientRecord? {
        clients.withStripe(stripe(for: id)) { $0[id] }
    }

    /// Every connected client's ID (unordered).
    var allIDs: [UUID] { clients.keys }

    var count: Int { clients.count }
}
