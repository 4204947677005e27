import Glibc
import Testing
@testable import GhostSync

@Suite struct OutboxTests {
    private func frame(_ bytes: [UInt8]) -> SharedFrame {
        bytes.withUnsafeBytes { SharedFrame.copying($0) }
    }

    private func unsent(_ outbox: inout Outbox) -> [UInt8] {
        let vectors = UnsafeMutablePointer<iovec>.allocate(capacity: 1024)
        defer { vectors.deallocate() }
        let gathered = outbox.gather(into: vectors, limit: 1024)
        var bytes: [UInt8] = []
        for index in 0..<gathered.vectors {
            bytes += UnsafeRawBufferPointer(start: vectors[index].iov_base, count: vectors[index].iov_len)
        }
        #expect(bytes.count == gathered.bytes)
        return bytes
    }

    @Test func partialWritesResumeMidFrame() {
        var outbox = Outbox()
        for value in 0..<40 {
            let shared = frame(Array(repeating: UInt8(value), count: 10))
            outbox.append(shared)
            shared.release()
        }
        let all = (0..<40).flatMap { Array(repeating: UInt8($0), count: 10) }
        #expect(unsent(&outbox) == all)
        outbox.consume(15)
        #expect(outbox.count == 39)
        #expect(unsent(&outbox) == Array(all[15...]))
        outbox.consume(385)
        let empty = outbox.isEmpty
        #expect(empty)
    }

    @Test func oneFrameSharedByManyOutboxes() {
        let shared = frame([1, 2, 3])
        var first = Outbox()
        var second = Outbox()
        first.append(shared)
        second.append(shared)
        shared.release()
        first.consume(3)
        #expect(unsent(&second) == [1, 2, 3])
        #expect(second.takeUnsentBytes() == [1, 2, 3])
        let secondEmpty = second.isEmpty
        #expect(secondEmpty)
    }

    @Test func unsentBytesForAHandoff() {
        var outbox = Outbox()
        for bytes: [UInt8] in [[1, 2, 3], [4, 5], [6]] {
            let shared = frame(bytes)
            outbox.append(shared)
            shared.release()
        }
        outbox.consume(2)
        #expect(outbox.takeUnsentBytes() == [3, 4, 5, 6])
        #expect(outbox.count == 0)
    }

    /// Issue 14, S4: one frame at a time needs no storage; the second brings the ring, in order.
    @Test func oneFrameAtATimeStaysInline() {
        var outbox = Outbox()
        for round in 0..<3 {
            let shared = frame([UInt8(round)])
            outbox.append(shared)
            shared.release()
            #expect(outbox.allocatedSlots == 0)
            #expect(unsent(&outbox) == [UInt8(round)])
            outbox.consume(1)
        }
        for value: UInt8 in [7, 8, 9] {
            let shared = frame([value, value])
            outbox.append(shared)
            shared.release()
        }
        #expect(outbox.allocatedSlots == 16)
        outbox.consume(3)
        #expect(unsent(&outbox) == [8, 9, 9])
        #expect(outbox.takeUnsentBytes() == [8, 9, 9])
    }

    /// Issue 14, S3: a drained ring keeps its storage for the next burst (no grow and free per
    /// flush); the liveness timer's `releaseSpareStorage` gives back what is over 64 slots.
    @Test func drainedRingKeepsStorageUntilReleased() {
        var outbox = Outbox()
        for value in 0..<100 {
            let shared = frame([UInt8(value)])
            outbox.append(shared)
            shared.release()
        }
        #expect(outbox.allocatedSlots == 128)
        outbox.consume(100)
        let empty1 = outbox.isEmpty
        #expect(empty1)
        #expect(outbox.allocatedSlots == 128)
        for value in 0..<100 {
            let shared = frame([UInt8(value)])
            outbox.append(shared)
            shared.release()
        }
        #expect(outbox.allocatedSlots == 128)
        outbox.releaseSpareStorage()  // not while frames are queued
        #expect(outbox.allocatedSlots == 128)
        outbox.consume(100)
        outbox.releaseSpareStorage()
        #expect(outbox.allocatedSlots == 0)
        let shared = frame([42])
        outbox.append(shared)
        shared.release()
        #expect(unsent(&outbox) == [42])
    }

    /// Issue 14: a write that took everything gathered releases the frames without a size
    /// lookup each (`consumeWhole`); mid-frame resumption, the ring's wrap, the inline frame and
    /// the references the frames keep in other queues are as with `consume`.
    @Test func wholeWritesReleaseTheGatheredFrames() {
        var outbox = Outbox()
        var other = Outbox()
        for round in 0..<3 {
            for value in 0..<20 {
                let shared = frame([UInt8(round), UInt8(value)])
                outbox.append(shared)
                other.append(shared)
                shared.release()
            }
            outbox.consume(3)  // one and a half frames, then the rest of the first gather
            let vectors = UnsafeMutablePointer<iovec>.allocate(capacity: 8)
            defer { vectors.deallocate() }
            let gathered = outbox.gather(into: vectors, limit: 8)
            #expect(gathered.vectors == 8 && gathered.bytes == 15)
            outbox.consumeWhole(frames: gathered.vectors)
            #expect(outbox.count == 11)
            #expect(unsent(&outbox) == (9..<20).flatMap { [UInt8(round), UInt8($0)] })
            outbox.consumeWhole(frames: 11)
            let empty2 = outbox.isEmpty
            #expect(empty2)
        }
        #expect(other.count == 60)
        #expect(other.takeUnsentBytes() == (0..<3).flatMap { round in (0..<20).flatMap { [UInt8(round), UInt8($0)] } })
        var inline = Outbox()
        let shared = frame([5])
        inline.append(shared)
        shared.release()
        #expect(inline.allocatedSlots == 0)
        inline.consumeWhole(frames: 1)
        let empty3 = inline.isEmpty
        #expect(empty3)
    }
}
