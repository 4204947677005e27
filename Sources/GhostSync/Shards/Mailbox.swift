import Glibc
import Synchronization

/// A worker's inbox (and, for what it posts to other workers, its outgoing backlog), plus an
/// eventfd to wake its `epoll_wait`.
///
/// **Inbound.** Commands from workers arrive through one bounded `CommandRing` per producing
/// worker (single producer, single consumer: posting is a slot write and one store, with no
/// allocation and no contended atomic). Commands from any other thread (`ServerHandle`:
/// `deleteRoom`, `shutdown`, and the server-side messages `broadcast`, `send`, `disconnect`)
/// arrive through a lock-free Treiber stack: pushed with one compare-and-swap, emptied whole by
/// the owner with one exchange and relinked into arrival order, so there is no single-node pop
/// and no ABA hazard. That stack allocates a node per post and is unbounded, on purpose: those
/// posts are calls the application makes at its own rate; a bound would have to drop a command
/// (a deleted room that keeps relaying), fail the call, or block the caller (a deadlock when a
/// hook on the owning worker calls it). `drain` takes both
/// without allocating.
///
/// **Full rings.** A handoff is never dropped. A worker that finds a ring full keeps the
/// command in that ring's backlog, private to it, behind which every later command for the
/// same peer queues too (order per pair holds), and retries at its next loop iteration with a
/// wait of at most `backlogRetryMilliseconds` while anything is backlogged. The cost, only
/// while a peer is a whole epoll batch behind: an array append per backlogged command, up to
/// that much extra delay for them, and up to 1,000 extra wake-ups a second for the producer.
/// The backlog is unbounded, but each handoff carries a connection already counted against
/// `maxClients`, so it holds at most that many.
///
/// **Wake-ups.** The owner wakes only if it is asleep: before blocking it calls
/// `prepareToSleep`, which raises the `sleeping` flag and then looks at every queue; a
/// producer publishes its command, then looks at the flag, and writes the eventfd only if it
/// is raised (and only the producer that lowers it). See `prepareToSleep` for why no wake-up
/// can be lost. A worker that is awake polls its queues every iteration anyway.
///
/// **Layout.** The flag, the stack and each ring's two sides are in `AtomicCells` or ring
/// blocks of their own lines, so no other worker's data shares them.
///
/// Thread roles: `post(_:)` from any thread; `post(_:from:)`, `retryBacklog` and
/// `hasBacklog` on the producing worker's thread (the one owning `from`); `drain`,
/// `prepareToSleep` and `wokeUp` on the owner's thread; `close` once the workers posting to or
/// owning this mailbox have stopped (their last act happens before it: `pthread_join`).
package final class Mailbox: Sendable {
    /// The owning worker's index, which is also its producer index in every other mailbox.
    package let owner: Int
    package let signal: EventSignal
    /// Longest wait of a worker with a backlog before it retries, in milliseconds.
    package static let backlogRetryMilliseconds: Int32 = 1

    /// One ring per producing worker, `CommandRing.byteCount` bytes each, end to end.
    nonisolated(unsafe) private let rings: UnsafeMutableRawPointer
    private let producerCount: Int
    /// Read by producers on every post, written by the owner around each sleep.
    private let doorbell = AtomicCells(count: 2)
    private static let sleeping = 0  // 1 while the owner is (about to be) blocked in epoll_wait
    private static let closed = 1  // 1 once `close` has run
    /// The any-thread path: written by those posts and by the owner's exchange.
    private let stack = AtomicCells(count: 2)
    private static let stackHead = 0  // the newest node's address as a bit pattern (0 = empty)
    private static let activePosts = 1  // any-thread posts in flight (`close` waits for them)

    /// Owner-confined: targets whose ring from this worker holds a backlog. Read every
    /// iteration (`hasBacklog`), so without dynamic exclusivity checks: only the owner's
    /// thread touches it, and never across a call that could reach it again.
    @exclusivity(unchecked) nonisolated(unsafe) private var backlogged: [Mailbox] = []
    /// Owner-confined: set while `drain` runs (a nested drain would take commands twice).
    @exclusivity(unchecked) nonisolated(unsafe) private var isDraining = false

    private final class Node: @unchecked Sendable {
        let command: WorkerCommand
        /// Written by the pushing thread before its releasing CAS, then only by the owner.
        var next: UnsafeMutableRawPointer?

        init(_ command: WorkerCommand) {
            self.command = command
        }
    }

    /// A mailbox for worker `owner` of `workerCount`, with one ring per worker that may post
    /// to it (itself included).
    package init(owner: Int, workerCount: Int) throws(SystemError) {
        precondition(workerCount > 0 && owner >= 0 && owner < workerCount)
        self.owner = owner
        producerCount = workerCount
        signal = try EventSignal()
        rings = .allocate(byteCount: workerCount * CommandRing.byteCount, alignment: CacheLine.size)
        for producer in 0..<workerCount {
            _ = CommandRing.initialize(at: rings + producer * CommandRing.byteCount)
        }
    }

    deinit {
        close()
        for producer in 0..<producerCount { ring(from: producer).deinitialize() }
        rings.deallocate()
    }

    @inline(__always)
    private func ring(from producer: Int) -> CommandRing {
        CommandRing(at: rings + producer * CommandRing.byteCount)
    }

    private var isClosed: Bool { doorbell[Self.closed].load(ordering: .relaxed) != 0 }

    // MARK: Posting

    /// Posts from a worker: `producer` is the posting worker's own mailbox, and this runs on
    /// that worker's thread. No allocation and no contended atomic in steady state: a slot
    /// write, one store, a look at the doorbell. If the ring from `producer` is full, the
    /// command waits in `producer`'s backlog (see `retryBacklog`). After `close`, the command
    /// is discarded.
    package func post(_ command: consuming WorkerCommand, from producer: Mailbox) {
        if isClosed {
            command.discard()
            return
        }
        if ring(from: producer.owner).post(command) {
            wakeIfAsleep()
        } else if !producer.backlogged.contains(where: { $0 === self }) {
            producer.backlogged.append(self)
        }
    }

    /// True if a command this worker posted is waiting for room in a peer's ring. Called on
    /// this mailbox's owner's thread.
    package var hasBacklog: Bool { !backlogged.isEmpty }

    /// Moves what this worker backlogged into its peers' rings, in order, as far as they have
    /// room, waking the peers that were asleep. Called on this mailbox's owner's thread, once
    /// per loop iteration while `hasBacklog`.
    package func retryBacklog() {
        var index = 0
        while index < backlogged.count {
            let target = backlogged[index]
            let ring = target.ring(from: owner)
            if target.isClosed {
                ring.discardBacklog()
            } else if ring.retryBacklog() {
                target.wakeIfAsleep()
            }
            if ring.hasBacklog {
                index += 1
            } else {
                backlogged.swapAt(index, backlogged.count - 1)
                backlogged.removeLast()
            }
        }
    }

    /// Posts from any thread that is not a worker (the `ServerHandle`): one node allocation and
    /// one compare-and-swap. After `close`, the command is discarded.
    package func post(_ command: WorkerCommand) {
        stack[Self.activePosts].add(1, ordering: .sequentiallyConsistent)
        defer { stack[Self.activePosts].add(-1, ordering: .sequentiallyConsistent) }
        if doorbell[Self.closed].load(ordering: .sequentiallyConsistent) != 0 {
            command.discard()
            return
        }
        let node = Node(command)
        let desired = Int(bitPattern: UInt(bitPattern: Unmanaged.passRetained(node).toOpaque()))
        var expected = stack[Self.stackHead].load(ordering: .relaxed)
        while true {
            node.next = UnsafeMutableRawPointer(bitPattern: expected)
            // Sequentially consistent: the publishing half of the doorbell handshake.
            let (exchanged, original) = stack[Self.stackHead].compareExchange(
                expected: expected, desired: desired, successOrdering: .sequentiallyConsistent, failureOrdering: .relaxed)
            if exchanged { break }
            expected = original
        }
        wakeIfAsleep()
    }

    /// The producer's half of the handshake, after publishing its command with a sequentially
    /// consistent store: if the owner has announced it is going to sleep, lower the flag and,
    /// if this producer is the one that lowered it, write the eventfd (one write per sleep,
    /// however many producers post).
    @inline(__always)
    private func wakeIfAsleep() {
        if doorbell[Self.sleeping].load(ordering: .sequentiallyConsistent) != 0,
           doorbell[Self.sleeping].exchange(0, ordering: .sequentiallyConsistent) != 0 {
            signal.signal()
        }
    }

    // MARK: The owner

    /// Called by the owner just before it blocks (in `epoll_wait` with a non-zero timeout).
    /// Returns false, without announcing anything, if a command is already waiting: take it
    /// instead of sleeping. After true, block, then call `wokeUp`.
    ///
    /// Why no wake-up is lost (Dekker's pattern, all four accesses sequentially consistent, so
    /// they fall in one total order consistent with each thread's program order): the owner
    /// stores `sleeping = 1`, then loads every queue's tail; a producer stores its tail (or
    /// stack head), then loads `sleeping`. If the owner's load of that tail comes first in the
    /// total order, the producer's store of it comes later, so the producer's load of
    /// `sleeping`, later still, sees 1 (or a later 0 written by another producer, which
    /// then signals): someone writes the eventfd. Otherwise the owner's load sees the command
    /// and returns false. Either way the owner does not sleep with a command it has not seen.
    /// Acquire/release alone would allow both loads to miss both stores (store→load
    /// reordering, which x86 does).
    package func prepareToSleep() -> Bool {
        doorbell[Self.sleeping].store(1, ordering: .sequentiallyConsistent)
        if hasCommands {
            doorbell[Self.sleeping].store(0, ordering: .relaxed)
            return false
        }
        return true
    }

    /// Called by the owner when its wait returned after `prepareToSleep` said true: producers
    /// stop signalling. (A producer that saw the flag just before still signals; the owner
    /// then finds the eventfd readable once, drains it, and finds nothing or a new command.)
    package func wokeUp() {
        doorbell[Self.sleeping].store(0, ordering: .relaxed)
    }

    /// True if something is waiting for the owner. Called by the owner.
    package var hasCommands: Bool {
        if stack[Self.stackHead].load(ordering: .sequentiallyConsistent) != 0 { return true }
        for producer in 0..<producerCount where ring(from: producer).hasCommands { return true }
        return false
    }

    /// Called only by the owning worker: hands every command posted so far to `body`, in place
    /// (no array, no allocation): first those from other threads in the order they were
    /// posted, then each worker's in the order that worker posted them. There is no order
    /// between different producers. `body` may post to any mailbox, this one included; what it
    /// posts here is taken by the next drain. `body` must not call `drain`.
    package func drain(_ body: (WorkerCommand) -> Void) {
        assert(!isDraining, "Mailbox.drain called from inside drain")
        isDraining = true
        defer { isDraining = false }
        drainStack(body)
        for producer in 0..<producerCount {
            ring(from: producer).drain(body)
        }
    }

    /// Takes the whole stack with one exchange, relinks it oldest first, and frees each node as
    /// its command is handed out.
    private func drainStack(_ body: (WorkerCommand) -> Void) {
        guard stack[Self.stackHead].load(ordering: .relaxed) != 0 else { return }
        // Acquiring: every node's fields were written before the CAS that published it.
        var pointer = UnsafeMutableRawPointer(bitPattern: UInt(bitPattern: stack[Self.stackHead].exchange(0, ordering: .acquiring)))
        var oldest: UnsafeMutableRawPointer?
        while let current = pointer {
            let node = Unmanaged<Node>.fromOpaque(current).takeUnretainedValue()
            pointer = node.next
            node.next = oldest
            oldest = current
        }
        while let current = oldest {
            let node = Unmanaged<Node>.fromOpaque(current).takeRetainedValue()
            oldest = node.next
            body(node.command)
        }
    }

    // MARK: Closing

    /// Stops the mailbox for good, once its owner and every worker posting to it have stopped:
    /// discards what is queued for the owner (`WorkerCommand.discard`: rings, what producers
    /// still held back for it, the stack), forgets the owner's own backlog references (those
    /// commands are discarded when their targets close), and closes the eventfd once no
    /// any-thread post is in flight. Later posts discard their command. Idempotent.
    package func close() {
        if doorbell[Self.closed].exchange(1, ordering: .sequentiallyConsistent) != 0 { return }
        while stack[Self.activePosts].load(ordering: .sequentiallyConsistent) != 0 { sched_yield() }
        drainStack { $0.discard() }
        for producer in 0..<producerCount { ring(from: producer).discardAll() }
        backlogged.removeAll()  // strong references to peers: no cycle survives close
        signal.close()
    }

    // MARK: Layout, for tests

    /// Every block of lines this mailbox's threads share: (address, byte count).
    package var sharedBlocks: [(address: UInt, byteCount: Int)] {
        var blocks = [(doorbell.address, doorbell.byteCount), (stack.address, stack.byteCount)]
        for producer in 0..<producerCount {
            let ring = ring(from: producer)
            blocks.append((ring.consumerLine, CacheLine.size))
            blocks.append((ring.producerLine, CacheLine.size))
        }
        return blocks
    }
}
