#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Every connected client, by ID, readable from any thread. Striped by ID so that accepts and
/// closes on different workers rarely contend; touched only on connect, disconnect and queries.
final class ClientDirectory: Sendable {
    private final class Stripe: Sendable {
        let clients = Locked<[UUID: ClientRecord]>([:])
    }

    private let stripes: [Stripe] = (0..<16).map { _ in Stripe() }

    private func stripe(for id: UUID) -> Stripe {
        stripes[Int(id.uuid.15 & 15)]
    }

    func insert(_ record: ClientRecord) {
        stripe(for: record.id).clients.withLock { $0[record.id] = record }
    }

    func remove(_ id: UUID) {
        _ = stripe(for: id).clients.withLock { $0.removeValue(forKey: id) }
    }

    func record(_ id: UUID) -> ClientRecord? {
        stripe(for: id).clients.withLock { $0[id] }
    }

    /// Every connected client's ID (unordered).
    var allIDs: [UUID] {
        stripes.flatMap { stripe in stripe.clients.withLock { Array($0.keys) } }
    }

    var count: Int {
        stripes.reduce(0) { total, stripe in total + stripe.clients.withLock { $0.count } }
    }
}
