/// A bag of `Sendable` values keyed by their type: one value per type per room or client
/// (the newest upstream's typed metadata).
struct TypedMetadata: Sendable {
    private var values: [ObjectIdentifier: any Sendable] = [:]

    func value<T: Sendable>(as type: T.Type) -> T? {
        values[ObjectIdentifier(type)] as? T
    }

    mutating func set<T: Sendable>(_ value: T) {
        values[ObjectIdentifier(T.self)] = value
    }

    mutating func take<T: Sendable>(as type: T.Type) -> T? {
        values.removeValue(forKey: ObjectIdentifier(type)) as? T
    }

    func contains<T: Sendable>(_ type: T.Type) -> Bool {
        values[ObjectIdentifier(type)] != nil
    }

    /// Runs `body` on the stored value in place; nil when there is none.
    mutating func modify<T: Sendable, Result>(_ type: T.Type, _ body: (inout T) throws -> Result) rethrows -> Result? {
        guard var value = values[ObjectIdentifier(type)] as? T else { return nil }
        defer { values[ObjectIdentifier(type)] = value }
        return try body(&value)
    }
}
