import Glibc
import Synchronization

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// What a caller asks of the room registry.
enum RegistryOperation: Sendable {
    /// Create the room unless it exists anywhere in the cluster.
    case create(roomID: String)
    /// Delete the room everywhere (the incarnation this relay knows: `revision`).
    case delete(roomID: String, revision: UInt64)
    /// Set (nil: remove) one string metadata value of the room incarnation `revision`.
    case setMetadata(roomID: String, revision: UInt64, key: String, value: String?)
    /// The members other relays have in `roomIDs` (nil: in every room).
    case members(roomIDs: [String]?)
}

/// The registry's answer.
enum RegistryOutcome: Sendable, Equatable {
    case created
    case alreadyExists
    case deleted
    /// The room (the incarnation asked about) no longer exists.
    case notFound
    case metadataSet
    /// Members on other relays, by room (from the relays that answered in time).
    case members([String: [UUID]])
    /// The registry could not be reached in time; the reason says why.
    case unavailable(String)
}

/// One request on its way to the registry thread, and the caller blocked until it is answered.
///
/// The registry thread answers every request exactly once: with its outcome, when its deadline
/// passes, or when the registry stops. So `wait` needs no timeout of its own.
final class RegistryRequest: @unchecked Sendable {
    let operation: RegistryOperation
    /// Monotonic milliseconds after which the registry answers `.unavailable`.
    let deadline: Int64
    // Invariants: `semaphore` is initialised in `init`, destroyed in `deinit`, never moved;
    // `outcome` is written once (under its lock) before the one `sem_post`, read after `sem_wait`.
    private let semaphore: UnsafeMutablePointer<sem_t>
    private let outcome = Locked<RegistryOutcome?>(nil)

    init(_ operation: RegistryOperation, deadline: Int64) {
        self.operation = operation
        self.deadline = deadline
        semaphore = .allocate(capacity: 1)
        sem_init(semaphore, 0, 0)
    }

    deinit {
        sem_destroy(semaphore)
        semaphore.deallocate()
    }

    /// Gives the caller its outcome; later answers are ignored.
    func answer(_ result: RegistryOutcome) {
        let first = outcome.withLock { current in
            guard current == nil else { return false }
            current = result
            return true
        }
        if first { sem_post(semaphore) }
    }

    var isAnswered: Bool { outcome.withLock { $0 != nil } }

    /// Blocks the calling thread until the registry answers.
    func wait() -> RegistryOutcome {
        while sem_wait(semaphore) != 0 && errno == EINTR {}
        return outcome.withLock { $0 } ?? .unavailable("no answer")
    }
}
