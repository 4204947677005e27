
/// Counts down arrivals from worker threads; an async waiter resumes when all have arrived.
/// Lets `run()` and `shutdown()` wait for threads without blocking a Swift concurrency thread.
final class CompletionLatch: Sendable {
    private struct State {
        var remaining: Int
        var failures: [SystemError] = []
        var waiters: [CheckedContinuation<[SystemError], Never>] = []
    }

    private let state: Locked<State>

    init(count: Int) {
        state = Locked(State(remaining: count))
    }

    func arrive(_ failure: SystemError?) {
        let resume: ([CheckedContinuation<[SystemError], Never>], [SystemError]) = state.withLock { state in
            if let failure { state.failures.append(failure) }
            state.remaining -= 1
            guard state.remaining == 0 else { return ([], []) }
            defer { state.waiters = [] }
            return (state.waiters, state.failures)
        }
        for waiter in resume.0 { waiter.resume(returning: resume.1) }
    }

    /// Returns once every arrival is in, with the failures reported.
    func wait() async -> [SystemError] {
        await withCheckedContinuation { continuation in
            let ready: [SystemError]? = state.withLock { state in
                if state.remaining <= 0 { return state.failures }
                state.waiters.append(continuation)
                return nil
            }
            if let ready { continuation.resume(returning: ready) }
        }
    }
}
