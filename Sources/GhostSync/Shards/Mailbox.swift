import Glibc
import Synchronization

/// A worker's inbox: a lock-free multi-producer, single-consumer queue plus an eventfd to wake
/// the worker's epoll_wait.
///
/// Shape: a Treiber stack that producers push onto with one compare-and-swap and the consumer
/// empties whole with one exchange, then reverses into arrival order. Taking everything at once
/// means no single-node pop, so there is no ABA hazard. Never full: a handoff is never dropped.
/// The producer signals the eventfd only when it found the stack empty; the consumer's exchange
/// re-arms that, so a burst of posts costs one wake-up.
///
/// Invariants: a node is written only by its producer before the releasing CAS publishes it, and
/// read only by the consumer after the acquiring exchange; each node is retained once by `post`
/// and released once by `drain` (or by `deinit` for what is never drained).
package final class Mailbox: Sendable {
    private final class Node: @unchecked Sendable {
        let command: WorkerCommand
        var next: UnsafeMutableRawPointer?

        init(_ command: WorkerCommand) {
            self.command = command
        }
    }

    /// The newest node's address as a bit pattern (0 = empty); `UInt` because `Atomic` of a
    /// pointer is not `Sendable`.
    private let head = Atomic<UInt>(0)
    package let signal: EventSignal
    /// Set by `close`; later posts discard their command instead of queueing it.
    private let closed = Atomic<Bool>(false)
    /// Posts in progress: `close` waits for them so no post signals a closed (reused) eventfd.
    private let activePosts = Atomic<Int>(0)

    package init() throws(SystemError) {
        signal = try EventSignal()
    }

    deinit {
        close()
    }

    /// Called from any thread. After `close`, the command is discarded.
    package func post(_ command: WorkerCommand) {
        activePosts.add(1, ordering: .sequentiallyConsistent)
        defer { activePosts.subtract(1, ordering: .sequentiallyConsistent) }
        if closed.load(ordering: .sequentiallyConsistent) {
            command.discard()
            return
        }
        let node = Node(command)
        let pointer = Unmanaged.passRetained(node).toOpaque()
        let desired = UInt(bitPattern: pointer)
        var expected = head.load(ordering: .relaxed)
        while true {
            node.next = UnsafeMutableRawPointer(bitPattern: expected)
            let (exchanged, original) = head.compareExchange(
                expected: expected, desired: desired,
                successOrdering: .releasing, failureOrdering: .relaxed)
            if exchanged { break }
            expected = original
        }
        if expected == 0 { signal.signal() }
    }

    /// Stops the mailbox for good (after its worker has exited): discards what is queued and
    /// closes the eventfd once no post is in flight. Idempotent.
    package func close() {
        if closed.exchange(true, ordering: .sequentiallyConsistent) { return }
        while activePosts.load(ordering: .sequentiallyConsistent) != 0 { sched_yield() }
        for command in drain() { command.discard() }
        signal.close()
    }

    /// True when something is waiting (a cheap check before a full drain).
    package var isEmpty: Bool { head.load(ordering: .relaxed) == 0 }

    /// Called only by the owning worker: every command posted so far, oldest first.
    package func drain() -> [WorkerCommand] {
        guard var pointer = UnsafeMutableRawPointer(bitPattern: head.exchange(0, ordering: .acquiring)) else { return [] }
        var commands: [WorkerCommand] = []
        while true {
            let node = Unmanaged<Node>.fromOpaque(pointer).takeRetainedValue()
            commands.append(node.command)
            guard let next = node.next else { break }
            pointer = next
        }
        commands.reverse()
        return commands
    }
}
