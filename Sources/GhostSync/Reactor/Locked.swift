import Glibc

/// A value behind a pthread mutex, for the control-path state that several threads share
/// (directories, records, the client connection). Never used on the relay path.
///
/// Why not `Synchronization.Mutex`: on Linux it parks on a raw futex that ThreadSanitizer does not
/// model, so every access under it is reported as a race and real races drown. pthread mutexes
/// are intercepted, so `make test-tsan` stays meaningful.
///
/// Invariant: `value` is read or written only between lock and unlock of `mutex`; the mutex lives
/// in its own allocation (it must not move) for the object's whole life.
package final class Locked<Value>: @unchecked Sendable {
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private var value: Value

    package init(_ value: Value) {
        self.value = value
        mutex = .allocate(capacity: 1)
        mutex.initialize(to: pthread_mutex_t())
        pthread_mutex_init(mutex, nil)
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    /// Runs `body` with exclusive access. `body` must not call back into the same lock.
    package func withLock<Result>(_ body: (inout Value) throws -> Result) rethrows -> Result {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body(&value)
    }
}
