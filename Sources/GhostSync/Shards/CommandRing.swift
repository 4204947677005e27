import Synchronization

/// A bounded single-producer, single-consumer ring of `WorkerCommand`s: one per (producer
/// worker, consumer worker) pair, inside the consumer's `Mailbox` (Seastar's shape).
///
/// This is a view of a block of memory the `Mailbox` owns (copying the view copies a pointer).
/// Layout, `CacheLine.size` (128 B) aligned, so that the two sides never write the same line:
///
///     [0, 128)     consumer's line: `head`, the next index to take (written only by the consumer)
///     [128, 256)   producer's line: `tail`, the next index to fill (written only by the
///                  producer), the producer's cached copy of `head`, and its backlog (an
///                  array and the index of its oldest entry)
///     [256, ...)   `capacity` slots
///
/// Invariants: indices run freely (`Int`, they never wrap in practice) and a slot is
/// `index & mask`; `0 ≤ tail − head ≤ capacity`; slots in `head..<tail` hold initialised
/// commands and no other slot does. The producer initialises a slot, then publishes it with its
/// store of `tail`; the consumer moves a command out, then gives the slot back with its
/// releasing store of `head`, which the producer acquires before reusing the slot. The
/// producer reads `head` only when its cached copy says the ring is full, so in steady state
/// neither side reads a line the other writes except `tail` (and the slots themselves).
///
/// Thread roles: the producer methods run only on the producing worker's thread, the consumer
/// methods only on the consuming worker's; `discardAll` and `deinitialize` only once both
/// have stopped. The producer's backlog is its own (commands that found the ring full, in
/// order, in `backlog[backlogStart...]`); it sits in the ring only so that each pair has
/// exactly one. A command leaves the backlog (its entry set to nil) *before* it is published:
/// once published, the consumer may run it and drop the connection, and no reference may be
/// left behind on the producer, or the connection's last release (its `deinit`, which hands
/// pooled frames back with plain reference counts) would run on the wrong thread.
struct CommandRing {
    /// Slots per pair. 256: one epoll batch (`Worker.eventCapacity`, 256 events, so at most 256
    /// handoffs per iteration, one per connection read) fits in an empty ring, so a ring fills
    /// only when its consumer falls behind by a whole batch, and the backlog covers that rare
    /// case. Memory is per pair, so it grows with the square of the workers: 256 slots × 32 B
    /// = 8 KiB + 256 B per pair, 0.5 MiB per worker and 33 MiB in all on a 64-worker host
    /// (1,024 slots would be 132 MiB there, for bursts the backlog absorbs anyway). Seastar uses
    /// 128 per pair. A power of two, so a slot is an `&`.
    static let capacity = 256
    private static let mask = capacity - 1
    private static let producerOffset = CacheLine.size
    private static let cachedHeadOffset = producerOffset + MemoryLayout<Atomic<Int>>.stride
    private static let backlogStartOffset = cachedHeadOffset + MemoryLayout<Int>.stride
    private static let backlogOffset = backlogStartOffset + MemoryLayout<Int>.stride
    private static let slotsOffset = 2 * CacheLine.size
    /// Bytes per ring, a whole number of lines (so rings laid end to end share none).
    static let byteCount = CacheLine.roundUp(slotsOffset + capacity * MemoryLayout<WorkerCommand>.stride)

    private let base: UnsafeMutableRawPointer

    private var head: UnsafeMutablePointer<Atomic<Int>> { base.assumingMemoryBound(to: Atomic<Int>.self) }
    private var tail: UnsafeMutablePointer<Atomic<Int>> {
        (base + Self.producerOffset).assumingMemoryBound(to: Atomic<Int>.self)
    }
    private var cachedHead: UnsafeMutablePointer<Int> { (base + Self.cachedHeadOffset).assumingMemoryBound(to: Int.self) }
    private var backlogStart: UnsafeMutablePointer<Int> { (base + Self.backlogStartOffset).assumingMemoryBound(to: Int.self) }
    private var backlog: UnsafeMutablePointer<[WorkerCommand?]> {
        (base + Self.backlogOffset).assumingMemoryBound(to: [WorkerCommand?].self)
    }
    private var slots: UnsafeMutablePointer<WorkerCommand> {
        (base + Self.slotsOffset).assumingMemoryBound(to: WorkerCommand.self)
    }

    /// Views a ring already set up at `base` by `initialize(at:)`.
    init(at base: UnsafeMutableRawPointer) {
        self.base = base
    }

    /// Sets up an empty ring in `byteCount` bytes at `base`, which must be `CacheLine.size`-aligned.
    static func initialize(at base: UnsafeMutableRawPointer) -> CommandRing {
        precondition(UInt(bitPattern: base) % UInt(CacheLine.size) == 0, "ring not line-aligned")
        base.initializeMemory(as: UInt8.self, repeating: 0, count: slotsOffset)
        base.bindMemory(to: Atomic<Int>.self, capacity: 1).initialize(to: Atomic(0))
        (base + producerOffset).bindMemory(to: Atomic<Int>.self, capacity: 1).initialize(to: Atomic(0))
        (base + cachedHeadOffset).bindMemory(to: Int.self, capacity: 1).initialize(to: 0)
        (base + backlogStartOffset).bindMemory(to: Int.self, capacity: 1).initialize(to: 0)
        (base + backlogOffset).bindMemory(to: [WorkerCommand?].self, capacity: 1).initialize(to: [])
        (base + slotsOffset).bindMemory(to: WorkerCommand.self, capacity: capacity)
        return CommandRing(at: base)
    }

    /// Frees what the ring holds (call `discardAll` first to release the commands properly).
    func deinitialize() {
        var index = head.pointee.load(ordering: .relaxed)
        let end = tail.pointee.load(ordering: .relaxed)
        while index != end {
            (slots + (index & Self.mask)).deinitialize(count: 1)
            index &+= 1
        }
        backlog.deinitialize(count: 1)
        backlogStart.deinitialize(count: 1)
        cachedHead.deinitialize(count: 1)
        tail.deinitialize(count: 1)
        head.deinitialize(count: 1)
    }

    // MARK: Producer side

    /// Queues `command`: into the ring if it has room and nothing is backlogged, else at the end
    /// of the backlog (so the order is kept either way). True if it went into the ring (the
    /// consumer may then need waking); false if it is backlogged (`retryBacklog` later).
    func post(_ command: consuming WorkerCommand) -> Bool {
        if backlog.pointee.isEmpty, let index = freeIndex() {
            publish(command, at: index)
            return true
        }
        backlog.pointee.append(command)
        return false
    }

    /// Invariant: the backlog is empty, or `backlogStart < backlog.count` (entries before it are
    /// nil, already published).
    var hasBacklog: Bool { !backlog.pointee.isEmpty }

    /// Moves backlogged commands into the ring, oldest first, while there is room. True if it
    /// moved any. Amortised O(1) per command: the array is compacted only once its published
    /// prefix is at least half of it.
    func retryBacklog() -> Bool {
        let start = backlogStart.pointee
        var next = start
        let end = backlog.pointee.count
        while next < end, let index = freeIndex() {
            let command = backlog.pointee[next].take()!  // out of the backlog before it is published
            publish(command, at: index)
            next += 1
        }
        guard next > start else { return false }
        if next == end {
            backlog.pointee.removeAll(keepingCapacity: true)
            backlogStart.pointee = 0
        } else if next >= 64 && next * 2 >= end {
            backlog.pointee.removeFirst(next)
            backlogStart.pointee = 0
        } else {
            backlogStart.pointee = next
        }
        return true
    }

    /// The index to fill next, or nil if the ring is full.
    @inline(__always)
    private func freeIndex() -> Int? {
        let index = tail.pointee.load(ordering: .relaxed)  // only this thread writes it
        if index &- cachedHead.pointee < Self.capacity { return index }
        // Looks full: see how far the consumer has got (acquiring: its moves out of the slots
        // happen before we overwrite them).
        cachedHead.pointee = head.pointee.load(ordering: .acquiring)
        return index &- cachedHead.pointee < Self.capacity ? index : nil
    }

    /// Fills slot `index` and publishes it. Sequentially consistent, not just releasing: the
    /// store of `tail` is one half of the handshake with the consumer's `sleeping` flag, which
    /// must not be reordered before it (`Mailbox.prepareToSleep` gives the argument).
    @inline(__always)
    private func publish(_ command: consuming WorkerCommand, at index: Int) {
        (slots + (index & Self.mask)).initialize(to: command)
        tail.pointee.store(index &+ 1, ordering: .sequentiallyConsistent)
    }

    // MARK: Consumer side

    /// True if the producer has published a command the consumer has not taken. Sequentially
    /// consistent load: the other half of the handshake in `Mailbox.prepareToSleep`.
    var hasCommands: Bool {
        tail.pointee.load(ordering: .sequentiallyConsistent) != head.pointee.load(ordering: .relaxed)
    }

    /// Takes every command published so far, oldest first, handing each to `body` in place (no
    /// copy of the queue). Each slot is given back before `body` runs, so `body` may post to
    /// this ring again (a worker posting to itself); what it posts is taken by the next drain.
    /// `body` must not drain this ring (the `Mailbox` asserts it).
    func drain(_ body: (WorkerCommand) -> Void) {
        let end = tail.pointee.load(ordering: .acquiring)
        var index = head.pointee.load(ordering: .relaxed)  // only this thread writes it
        while index != end {
            let command = (slots + (index & Self.mask)).move()
            index &+= 1
            head.pointee.store(index, ordering: .releasing)
            body(command)
        }
    }

    // MARK: After both sides stopped

    /// Discards every command still queued for the consumer: in the ring and in the backlog.
    func discardAll() {
        drain { $0.discard() }
        discardBacklog()
    }

    /// Discards what the producer holds back (its consumer has closed).
    func discardBacklog() {
        for case let command? in backlog.pointee { command.discard() }
        backlog.pointee.removeAll()
        backlogStart.pointee = 0
    }

    // MARK: Layout, for tests

    /// Addresses of the consumer's and the producer's lines.
    var consumerLine: UInt { UInt(bitPattern: head) }
    var producerLine: UInt { UInt(bitPattern: tail) }
}
