/// A dictionary split into independently locked stripes, readable and writable from any thread.
/// The caller picks the stripe for a key (the room's shard, a byte of a client ID), so that
/// threads working on different stripes never contend. Control path only: accept, close, join,
/// leave and queries; never the per-message relay path. No lock here is held while a hook runs.
final class StripedDictionary<Key: Hashable & Sendable, Value: Sendable>: Sendable {
    private final class Stripe: Sendable {
        let entries = Locked<[Key: Value]>([:])
    }

    private let stripes: [Stripe]

    init(stripeCount: Int) {
        stripes = (0..<stripeCount).map { _ in Stripe() }
    }

    /// Runs `body` with stripe `index` locked.
    func withStripe<Result>(_ index: Int, _ body: (inout [Key: Value]) -> Result) -> Result {
        stripes[index].entries.withLock(body)
    }

    var count: Int {
        stripes.reduce(0) { total, stripe in total + stripe.entries.withLock { $0.count } }
    }

    var keys: [Key] {
        stripes.flatMap { stripe in stripe.entries.withLock { Array($0.keys) } }
    }

    var values: [Value] {
        stripes.flatMap { stripe in stripe.entries.withLock { Array($0.values) } }
    }
}
