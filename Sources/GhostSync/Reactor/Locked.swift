import Glibc

/// A value behind a pthread mutex, for the control-path state that several threads share
/// (directories, records, the client connection). Never used on the relay path.
///
/// Why not `Synchronization.Mutex`: on Linux it parks on a raw futex that ThreadSanitizer does not
/// model, so every access under it is reported as a race and real races drown. pthread mutexes
/// are intercepted, so `make test-tsan` stays meaningful.
///
/// Memory: the value and the mutex share one allocation (a `ManagedBuffer` whose header is the
/// value and whose one element is the mutex): one malloc per lock, not two. Every connected
/// client has one, so this is 48 bytes per idle connection.
///
/// Invariant: the value is read or written only between lock and unlock of the mutex; the mutex
/// lives in the buffer's element storage, which never moves, for the buffer's whole life.
package struct Locked<Value>: @unchecked Sendable {
    private final class Storage: ManagedBuffer<Value, pthread_mutex_t> {
        deinit {
            _ = withUnsafeMutablePointerToElements { pthread_mutex_destroy($0) }
        }
    }

    private let storage: Storage

    package init(_ value: Value) {
        storage = unsafeDowncast(Storage.create(minimumCapacity: 1) { _ in value }, to: Storage.self)
        storage.withUnsafeMutablePointerToElements { mutex in
            mutex.initialize(to: pthread_mutex_t())
            pthread_mutex_init(mutex, nil)
        }
    }

    /// Runs `body` with exclusive access. `body` must not call back into the same lock.
    package func withLock<Result>(_ body: (inout Value) throws -> Result) rethrows -> Result {
        try storage.withUnsafeMutablePointers { value, mutex in
            pthread_mutex_lock(mutex)
            defer { pthread_mutex_unlock(mutex) }
            return try body(&value.pointee)
        }
    }
}
