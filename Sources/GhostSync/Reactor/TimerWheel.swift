/// A hashed timer wheel: O(1) schedule, O(1) cancel, and firing cost proportional to what is due.
///
/// 1 ms ticks and 4,096 slots (one revolution ≈ 4.1 s); a deadline further out waits in its slot
/// and is skipped on earlier revolutions. Cancellation is lazy: an entry carries the owner's
/// token, and the owner ignores a fired entry whose token it no longer holds. A bitmap of
/// non-empty slots gives the epoll_wait timeout without scanning the slots.
///
/// Pure data: time is passed in, so tests drive it without a clock.
package struct TimerWheel {
    package struct Entry: Equatable {
        /// Where the owner lives (a worker's connection-table index).
        package var owner: Int32
        /// The owner's token at scheduling time: a mismatch means the entry was cancelled.
        package var token: UInt64
        /// Absolute deadline in milliseconds.
        package var deadline: Int64

        package init(owner: Int32, token: UInt64, deadline: Int64) {
            self.owner = owner
            self.token = token
            self.deadline = deadline
        }
    }

    package static let slotCount = 4096
    private static let mask = Int64(slotCount - 1)

    private var slots: [[Entry]]
    private var occupied: [UInt64]
    /// Every tick up to and including this one has been processed.
    private(set) var processedTick: Int64
    /// Entries stored, cancelled ones included.
    private(set) var count = 0

    package init(now: Int64) {
        slots = Array(repeating: [], count: Self.slotCount)
        occupied = Array(repeating: 0, count: Self.slotCount / 64)
        processedTick = now
    }

    package mutating func schedule(_ entry: Entry) {
        // A deadline already passed fires at the next advance.
        let tick = max(entry.deadline, processedTick + 1)
        let slot = Int(tick & Self.mask)
        slots[slot].append(entry)
        occupied[slot >> 6] |= 1 << UInt64(slot & 63)
        count += 1
    }

    /// Removes every entry due at `now` (deadline ≤ now) and appends it to `due`.
    package mutating func advance(to now: Int64, collecting due: inout [Entry]) {
        guard now > processedTick else { return }
        let ticks = min(now - processedTick, Int64(Self.slotCount))
        if count > 0 {
            for step in 1...ticks {
                let slot = Int((processedTick + step) & Self.mask)
                guard occupied[slot >> 6] & (1 << UInt64(slot & 63)) != 0 else { continue }
                var kept = 0
                for index in slots[slot].indices {
                    let entry = slots[slot][index]
                    if entry.deadline <= now {
                        due.append(entry)
                    } else {
                        slots[slot][kept] = entry
                        kept += 1
                    }
                }
                count -= slots[slot].count - kept
                if kept == 0 {
                    slots[slot] = []  // give the storage back: over time every slot gets used
                    occupied[slot >> 6] &= ~(1 << UInt64(slot & 63))
                } else {
                    slots[slot].removeLast(slots[slot].count - kept)
                }
            }
        }
        processedTick = now
    }

    /// Entry storage the slots hold (capacity, not count): stays proportional to the entries
    /// pending, because a slot gives its storage back when it empties.
    package var retainedCapacity: Int { slots.reduce(0) { $0 + $1.capacity } }

    /// Milliseconds from `now` until the next non-empty slot comes round, or nil when empty.
    /// May wake early for an entry that is a revolution or more away; never late.
    package func millisecondsUntilNext(now: Int64) -> Int64? {
        guard count > 0 else { return nil }
        let start = Int((processedTick + 1) & Self.mask)
        var distance = 0
        var slot = start
        while distance < Self.slotCount {
            let word = occupied[slot >> 6] >> UInt64(slot & 63)
            if word != 0 {
                let skip = word.trailingZeroBitCount
                distance += skip
                break
            }
            let skip = 64 - (slot & 63)
            distance += skip
            slot = (slot + skip) & Int(Self.mask)
        }
        let tick = processedTick + 1 + Int64(min(distance, Self.slotCount - 1))
        return max(0, tick - now)
    }
}
