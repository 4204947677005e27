import Glibc
import Testing
@testable import GhostSync

extension Relay {
    @Suite struct MailboxTests {
        /// Four producer threads post concurrently; the consumer gets every command exactly once,
        /// each producer's in the order it posted them.
        @Test func manyProducersLoseNothingAndKeepOrder() throws {
            let mailbox = try Mailbox()
            let producers = 4
            let perProducer = 20_000
            let threads = (0..<producers).map { producer in
                startThread {
                    for sequence in 0..<perProducer {
                        mailbox.post(.roomDeleted(roomID: "p\(producer)", generation: UInt64(sequence)))
                    }
                }
            }
            var next = [String: UInt64]()
            var received = 0
            var polls = 0
            while received < producers * perProducer && polls < 10_000_000 {
                polls += 1
                for command in mailbox.drain() {
                    guard case .roomDeleted(let producer, let sequence) = command else {
                        Issue.record("unexpected command")
                        continue
                    }
                    #expect(sequence == next[producer, default: 0])
                    next[producer] = sequence + 1
                    received += 1
                }
            }
            threads.forEach { pthread_join($0, nil) }
            #expect(received == producers * perProducer)
            #expect(mailbox.drain().isEmpty)
            mailbox.close()
        }

        /// A post to an empty mailbox makes its eventfd readable; draining re-arms it.
        @Test func postToEmptyMailboxSignals() throws {
            let mailbox = try Mailbox()
            defer { mailbox.close() }
            var descriptor = pollfd(fd: mailbox.signal.fd, events: Int16(POLLIN), revents: 0)
            #expect(poll(&descriptor, 1, 0) == 0)
            mailbox.post(.stop)
            #expect(poll(&descriptor, 1, 1000) == 1)
            mailbox.signal.drain()
            _ = mailbox.drain()
            descriptor.revents = 0
            #expect(poll(&descriptor, 1, 0) == 0)
        }
    }
}

/// Runs `body` on a new pthread (for tests that need real concurrent threads).
func startThread(_ body: @escaping @Sendable () -> Void) -> pthread_t {
    try! NativeThread.start(body)
}
