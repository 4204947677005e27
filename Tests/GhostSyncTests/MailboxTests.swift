#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Glibc
import Synchronization
import Testing
@testable import GhostSync

extension Relay {
    @Suite struct MailboxTests {
        /// Four worker-style producers (one ring each) and one any-thread producer (the stack)
        /// post concurrently. The consumer starts draining only once every ring has filled and
        /// every worker producer has backlogged, so the backlog path is always taken. The
        /// consumer gets every command exactly once, each producer's in the order it posted.
        @Test func manyProducersThroughFullRingsLoseNothingAndKeepOrder() throws {
            let producers = 4
            let perProducer = 20_000
            let consumer = try Mailbox(owner: producers, workerCount: producers + 1)
            let senders = try (0..<producers).map { try Mailbox(owner: $0, workerCount: producers + 1) }
            let backlogged = SharedCount()
            let threads = (0..<producers).map { producer in
                startThread {
                    let sender = senders[producer]
                    var announced = false
                    for sequence in 0..<perProducer {
                        consumer.post(.roomDeleted(roomID: "p\(producer)", generation: UInt64(sequence)), from: sender)
                        if sender.hasBacklog {
                            if !announced {
                                announced = true
                                backlogged.value.add(1, ordering: .releasing)
                            }
                            sender.retryBacklog()
                        }
                    }
                    // As a worker does at each iteration, until the consumer has made room.
                    while sender.hasBacklog {
                        sched_yield()
                        sender.retryBacklog()
                    }
                }
            } + [startThread {
                for sequence in 0..<perProducer {
                    consumer.post(.roomDeleted(roomID: "any", generation: UInt64(sequence)))
                }
            }]
            while backlogged.value.load(ordering: .acquiring) < producers { sched_yield() }
            var next = [String: UInt64]()
            var received = 0
            var outOfOrder = 0
            let expected = (producers + 1) * perProducer
            while received < expected {
                var got = 0
                consumer.drain { command in
                    got += 1
                    guard case .roomDeleted(let producer, let sequence) = command else { return }
                    if sequence != next[producer, default: 0] { outOfOrder += 1 }
                    next[producer] = sequence + 1
                }
                received += got
                if got == 0 { sched_yield() }
            }
            threads.forEach { pthread_join($0, nil) }
            #expect(received == expected)
            #expect(outOfOrder == 0)
            #expect(next.count == producers + 1 && next.values.allSatisfy { $0 == UInt64(perProducer) })
            #expect(!consumer.hasCommands)
            #expect(senders.allSatisfy { !$0.hasBacklog })
            consumer.close()
            senders.forEach { $0.close() }
        }

        /// The consumer really blocks (poll on the eventfd, no timeout that matters) after
        /// `prepareToSleep`; the producers post one command at a time and wait for it to be
        /// taken, so nearly every post races with the consumer going to sleep. A lost wake-up
        /// would leave the consumer blocked: it gives up after 10 s and counts it.
        @Test func noWakeUpIsLost() throws {
            let rounds = 20_000
            let consumer = try Mailbox(owner: 1, workerCount: 2)
            let sender = try Mailbox(owner: 0, workerCount: 2)
            let taken = SharedCount()
            let lost = SharedCount()
            let sleeps = SharedCount()
            let thread = startThread {
                var received = 0
                while received < rounds {
                    consumer.drain { _ in received += 1 }
                    taken.value.store(received, ordering: .releasing)
                    // Jitter (a spin, not a sleep): the producer's next post, triggered by the
                    // store above, then lands at varying points of `prepareToSleep`.
                    for _ in 0..<Int.random(in: 0..<200) { _ = taken.value.load(ordering: .relaxed) }
                    // After a loss, stop sleeping so that the test ends quickly.
                    guard received < rounds, lost.value.load(ordering: .relaxed) == 0, consumer.prepareToSleep() else {
                        continue
                    }
                    sleeps.value.add(1, ordering: .relaxed)
                    var descriptor = pollfd(fd: consumer.signal.fd, events: Int16(POLLIN), revents: 0)
                    if poll(&descriptor, 1, 10_000) == 0 { lost.value.add(1, ordering: .relaxed) }
                    consumer.wokeUp()
                    if descriptor.revents != 0 { consumer.signal.drain() }
                }
            }
            for round in 0..<rounds {
                // Both paths: a worker's ring and the any-thread stack.
                if round % 2 == 0 {
                    consumer.post(.roomDeleted(roomID: "", generation: UInt64(round)), from: sender)
                } else {
                    consumer.post(.roomDeleted(roomID: "", generation: UInt64(round)))
                }
                // One command in flight at a time (so the ring never fills).
                while taken.value.load(ordering: .acquiring) <= round { sched_yield() }
            }
            pthread_join(thread, nil)
            #expect(lost.value.load(ordering: .relaxed) == 0)
            // Not vacuous: the consumer did go to sleep with posts racing it.
            #expect(sleeps.value.load(ordering: .relaxed) > 0)
            consumer.close()
            sender.close()
        }

        /// The eventfd is written only for a sleeping owner, and `prepareToSleep` refuses while
        /// something is queued.
        @Test func onlyASleepingOwnerIsSignalled() throws {
            let mailbox = try Mailbox(owner: 0, workerCount: 2)
            let peer = try Mailbox(owner: 1, workerCount: 2)
            defer {
                mailbox.close()
                peer.close()
            }
            var descriptor = pollfd(fd: mailbox.signal.fd, events: Int16(POLLIN), revents: 0)
            func readable() -> Bool {
                descriptor.revents = 0
                return poll(&descriptor, 1, 0) == 1
            }
            // Awake: posts queue silently, and the owner may not sleep on them.
            mailbox.post(.stop, from: peer)
            mailbox.post(.stop)
            #expect(!readable())
            #expect(mailbox.hasCommands)
            #expect(!mailbox.prepareToSleep())
            var count = 0
            mailbox.drain { _ in count += 1 }
            #expect(count == 2)
            // Asleep: the first post (from either path) signals, once.
            for anyThread in [false, true] {
                #expect(mailbox.prepareToSleep())
                if anyThread { mailbox.post(.stop) } else { mailbox.post(.stop, from: peer) }
                #expect(readable())
                mailbox.post(.stop, from: peer)
                mailbox.signal.drain()
                #expect(!readable())  // the second post did not write again
                mailbox.wokeUp()
                mailbox.drain { _ in }
                #expect(!mailbox.hasCommands)
            }
        }

        /// A command handled in `drain` may post to its own mailbox (a worker's ring to itself)
        /// and to others; what it posts to itself comes in the next drain, in order.
        @Test func drainedCommandsMayPostMore() throws {
            let mailbox = try Mailbox(owner: 0, workerCount: 2)
            let peer = try Mailbox(owner: 1, workerCount: 2)
            defer {
                mailbox.close()
                peer.close()
            }
            for index in 0..<CommandRing.capacity {
                mailbox.post(.roomDeleted(roomID: "", generation: UInt64(index)), from: mailbox)
            }
            var seen: [UInt64] = []
            mailbox.drain { command in
                guard case .roomDeleted(_, let generation) = command else { return }
                seen.append(generation)
                // The ring was full when the drain began: each slot is free again by now.
                mailbox.post(.roomDeleted(roomID: "", generation: generation + 1000), from: mailbox)
                peer.post(.stop, from: mailbox)
            }
            #expect(seen == (0..<UInt64(CommandRing.capacity)).map { $0 })
            #expect(!mailbox.hasBacklog)
            seen.removeAll()
            mailbox.drain { command in
                if case .roomDeleted(_, let generation) = command { seen.append(generation) }
            }
            #expect(seen == (0..<UInt64(CommandRing.capacity)).map { $0 + 1000 })
            var stops = 0
            peer.drain { _ in stops += 1 }
            #expect(stops == CommandRing.capacity)
        }

        /// A command moved from the backlog into the ring leaves no reference behind on the
        /// producer: once the consumer drops the connection, it is gone (its last release, and
        /// its `deinit`, must not happen on the producer's thread).
        @Test func backlogKeepsNoReferenceToWhatItPublished() throws {
            let target = try Mailbox(owner: 1, workerCount: 2)
            let sender = try Mailbox(owner: 0, workerCount: 2)
            defer {
                target.close()
                sender.close()
            }
            for _ in 0..<CommandRing.capacity { target.post(.stop, from: sender) }
            weak var released: Connection?
            do {
                let connection = Connection(
                    fd: try Syscall.eventCreate(), id: UUID(), address: try SocketAddress(parsing: "127.0.0.1:1"),
                    maxPayload: 1024, now: 0, pingInterval: 1000)
                released = connection
                target.post(.adopt(Handoff(connection: connection, core: try testCore())), from: sender)
            }
            // Enough behind it that the retry below moves only part of the backlog and does
            // not compact it.
            for _ in 0..<(3 * CommandRing.capacity) { target.post(.stop, from: sender) }
            #expect(sender.hasBacklog)
            target.drain { _ in }
            sender.retryBacklog()
            #expect(sender.hasBacklog)
            var adopted = 0
            target.drain { command in
                guard case .adopt(let handoff) = command else { return }
                adopted += 1
                _ = handoff.connection.closeStranded()
            }
            #expect(adopted == 1)
            #expect(released == nil)
        }

        /// `close` discards what is queued — in the ring, in a producer's backlog, in the
        /// any-thread stack — and so does every later post.
        @Test func closeDiscardsQueuedAndLaterCommands() throws {
            let target = try Mailbox(owner: 1, workerCount: 2)
            let sender = try Mailbox(owner: 0, workerCount: 2)
            let address = try SocketAddress(parsing: "127.0.0.1:1")
            var connections: [Connection] = []
            func handoff() throws -> WorkerCommand {
                let connection = Connection(
                    fd: try Syscall.eventCreate(), id: UUID(), address: address, maxPayload: 1024, now: 0, pingInterval: 1000)
                connections.append(connection)
                return .adopt(Handoff(connection: connection, core: try testCore()))
            }
            for _ in 0..<(CommandRing.capacity + 10) { target.post(try handoff(), from: sender) }
            #expect(sender.hasBacklog)
            target.post(try handoff())
            target.close()
            #expect(connections.count == CommandRing.capacity + 11)
            #expect(connections.allSatisfy { $0.isClosed })
            // The producer forgets its backlog for a closed peer.
            sender.retryBacklog()
            #expect(!sender.hasBacklog)
            target.post(try handoff(), from: sender)
            target.post(try handoff())
            #expect(connections.allSatisfy { $0.isClosed })
            target.close()  // idempotent
            sender.close()
        }
    }
}

/// Runs `body` on a new pthread (for tests that need real concurrent threads).
func startThread(_ body: @escaping @Sendable () -> Void) -> pthread_t {
    try! NativeThread.start(body)
}

/// An atomic count that threads of a test share.
final class SharedCount: Sendable {
    let value = Atomic<Int>(0)
}

/// A server core for handoffs made outside a server (what a stranded one is ended against).
private func testCore() throws -> ServerCore {
    let topology = try MachineTopology.plan(workers: 1, cpus: nil, pinning: false, numaAware: false)
    return try ServerCore(
        configuration: ServerConfiguration(), topology: topology,
        localAddress: try SocketAddress(parsing: "127.0.0.1:1"), mailboxes: [])
}
