@testable import GhostSync

/// A thread-safe append-only log that a test can await: hooks append from worker threads, the
/// test waits for the entry it expects (bounded by a timeout) instead of sleeping.
final class EventLog<Event: Sendable>: Sendable {
    private struct Waiter {
        let id: Int
        let predicate: @Sendable (Event) -> Bool
        let continuation: CheckedContinuation<Event?, Never>
    }

    private struct State {
        var events: [Event] = []
        var waiters: [Waiter] = []
        var nextID = 0
    }

    private let state = Locked(State())

    init() {}

    func append(_ event: Event) {
        let ready: [Waiter] = state.withLock { state in
            state.events.append(event)
            let ready = state.waiters.filter { $0.predicate(event) }
            state.waiters.removeAll { $0.predicate(event) }
            return ready
        }
        for waiter in ready { waiter.continuation.resume(returning: event) }
    }

    var events: [Event] { state.withLock { $0.events } }

    /// The first logged event matching `predicate` (already logged or yet to come), or nil if
    /// none arrives within `timeout`.
    func first(within timeout: Duration = .seconds(10), where predicate: @escaping @Sendable (Event) -> Bool) async -> Event? {
        let id: Int = state.withLock { state in
            defer { state.nextID += 1 }
            return state.nextID
        }
        return await withTaskGroup(of: Event?.self) { group in
            group.addTask {
                await withCheckedContinuation { continuation in
                    let existing: Event?? = self.state.withLock { state in
                        if let found = state.events.first(where: predicate) { return .some(found) }
                        state.waiters.append(Waiter(id: id, predicate: predicate, continuation: continuation))
                        return .none
                    }
                    if case .some(let found) = existing { continuation.resume(returning: found) }
                }
            }
            group.addTask {
                try? await Task.sleep(for: timeout)
                // Time is up: release the waiter (if still waiting) with nil.
                let waiter: Waiter? = self.state.withLock { state in
                    guard let index = state.waiters.firstIndex(where: { $0.id == id }) else { return nil }
                    return state.waiters.remove(at: index)
                }
                waiter?.continuation.resume(returning: nil)
                return nil
            }
            let result = await group.next() ?? nil
            group.cancelAll()
            return result
        }
    }
}
