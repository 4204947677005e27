import Testing
@testable import GhostSync

/// The wheel is pure data: these tests drive time by hand, with no clock and no sleeping.
@Suite struct TimerWheelTests {
    private func entry(_ owner: Int32, at deadline: Int64) -> TimerWheel.Entry {
        .init(owner: owner, token: UInt64(owner), deadline: deadline)
    }

    @Test func firesOnlyWhatIsDue() {
        var wheel = TimerWheel(now: 1000)
        wheel.schedule(entry(1, at: 1010))
        wheel.schedule(entry(2, at: 1020))
        var due: [TimerWheel.Entry] = []
        wheel.advance(to: 1009, collecting: &due)
        #expect(due.isEmpty)
        wheel.advance(to: 1015, collecting: &due)
        #expect(due.map(\.owner) == [1])
        due.removeAll()
        wheel.advance(to: 1020, collecting: &due)
        #expect(due.map(\.owner) == [2])
        #expect(wheel.count == 0)
    }

    @Test func deadlinesBeyondOneRevolutionWaitTheirTurn() {
        var wheel = TimerWheel(now: 0)
        let far = Int64(TimerWheel.slotCount) * 3 + 5   // same slot as 5, three revolutions later
        wheel.schedule(entry(1, at: far))
        wheel.schedule(entry(2, at: 5))
        var due: [TimerWheel.Entry] = []
        wheel.advance(to: 5, collecting: &due)
        #expect(due.map(\.owner) == [2])
        due.removeAll()
        wheel.advance(to: far - 1, collecting: &due)
        #expect(due.isEmpty)
        wheel.advance(to: far, collecting: &due)
        #expect(due.map(\.owner) == [1])
    }

    @Test func aLongSleepFiresEverythingDue() {
        var wheel = TimerWheel(now: 0)
        for owner in 0..<100 { wheel.schedule(entry(Int32(owner), at: Int64(owner * 97))) }
        var due: [TimerWheel.Entry] = []
        wheel.advance(to: 1_000_000, collecting: &due)
        #expect(due.count == 100)
        #expect(wheel.count == 0)
        #expect(wheel.millisecondsUntilNext(now: 1_000_000) == nil)
    }

    @Test func pastDeadlineFiresAtTheNextAdvance() {
        var wheel = TimerWheel(now: 500)
        wheel.schedule(entry(1, at: 10))
        var due: [TimerWheel.Entry] = []
        wheel.advance(to: 501, collecting: &due)
        #expect(due.map(\.owner) == [1])
    }

    @Test func timeoutPointsAtTheNextOccupiedSlot() {
        var wheel = TimerWheel(now: 100)
        #expect(wheel.millisecondsUntilNext(now: 100) == nil)
        wheel.schedule(entry(1, at: 350))
        #expect(wheel.millisecondsUntilNext(now: 100) == 250)
        #expect(wheel.millisecondsUntilNext(now: 300) == 50)
        wheel.schedule(entry(2, at: 120))
        #expect(wheel.millisecondsUntilNext(now: 100) == 20)
    }

    @Test func timeoutNeverOverSleepsAFarDeadline() {
        var wheel = TimerWheel(now: 0)
        wheel.schedule(entry(1, at: 31_000))
        let timeout = wheel.millisecondsUntilNext(now: 0)!
        #expect(timeout > 0 && timeout <= 31_000)
    }

    /// Regression: slots used to keep their storage after firing; ping deadlines drift across
    /// all 4,096 slots over time, so a relay's memory grew steadily (seen in the soak).
    @Test func emptiedSlotsGiveTheirStorageBack() {
        var wheel = TimerWheel(now: 0)
        for owner in 0..<TimerWheel.slotCount {
            wheel.schedule(entry(Int32(owner), at: Int64(owner + 1)))
        }
        #expect(wheel.retainedCapacity >= TimerWheel.slotCount)
        var due: [TimerWheel.Entry] = []
        wheel.advance(to: Int64(TimerWheel.slotCount + 1), collecting: &due)
        #expect(due.count == TimerWheel.slotCount)
        #expect(wheel.retainedCapacity == 0)
    }
}
