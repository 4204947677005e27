import Dispatch
import Synchronization
import Testing
@testable import GhostSync

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

extension Relay {
    /// Issue 10, defect 1: a readiness event with both EPOLLIN and EPOLLOUT whose read holds a
    /// JoinRoom for another shard. The read hands the connection over; the old worker must not
    /// touch it afterwards (it used to read `slot` and `isClosed` while the adopting worker wrote
    /// them, and could index past its own table). Debug builds check the rule: a worker that
    /// touches a connection it no longer holds traps.
    @Suite struct HandoffRaceTests {
        /// Blocks the worker inside `onBroadcast` of a "block" message until the test lets go, so
        /// the test can make a socket readable and writable before the worker polls it again.
        struct GatedHandler: ServerHandler {
            let entered = DispatchSemaphore(value: 0)
            let proceed = DispatchSemaphore(value: 0)

            func onBroadcast(clientID: UUID, roomID: String, data: UnsafeRawBufferPointer) {
                guard Array(data) == Array("block".utf8) else { return }
                entered.signal()
                _ = proceed.wait(timeout: .now() + 10)
            }
        }

        @Test(arguments: [2, 4])
        func readableAndWritableEventWithCrossShardJoin(workers: Int) async throws {
            let roomA = roomID(onShard: 0, of: workers, prefix: "a")
            let roomB = roomID(onShard: 1, of: workers, prefix: "b")
            for _ in 0..<3 {
                let gate = GatedHandler()
                try await withServer(workers: workers, rooms: [roomA, roomB], configure: { $0.channelCapacity(4).handler(gate) }) { handle, port in
                    let member = try RawClient(port: port)
                    _ = try member.join(roomB)
                    let victim = try RawClient(port: port)
                    victim.shrinkReceiveBuffer(to: 128 * 1024)
                    let victimID = try victim.join(roomA)
                    let flooder = try RawClient(port: port)
                    _ = try flooder.join(roomA)

                    // Fill the victim's socket and its queue, so EPOLLOUT is armed for it.
                    let chunk = [UInt8](repeating: 0x5A, count: 60_000)
                    var rounds = 0
                    while handle.clientQueueLength(roomID: roomA, clientID: victimID) != 4 {
                        rounds += 1
                        try #require(rounds < 2000, "the victim's queue never filled")
                        for _ in 0..<8 { try flooder.send(.broadcast(chunk)) }
                    }
                    // Hold room A's worker in a hook; meanwhile make the victim's socket readable
                    // (a JoinRoom for B) and writable (read everything the relay had sent).
                    try flooder.send(.broadcast(Array("block".utf8)))
                    try #require(gate.entered.wait(timeout: .now() + 10) == .success)
                    try victim.send(.joinRoom(roomB))
                    try victim.discardUntilQuiet()
                    gate.proceed.signal()

                    // The join completes on B's worker and the victim relays there.
                    var joined = false
                    for _ in 0..<10_000 where !joined {
                        if case .joined(victimID, roomB) = try victim.receive() { joined = true }
                    }
                    #expect(joined)
                    #expect(try member.receive() == .playerJoined(clientID: victimID))
                    try victim.send(.broadcast([1, 2, 3]))
                    #expect(try member.receive() == .broadcast(senderID: victimID, data: [1, 2, 3]))
                }
            }
        }
    }
}
