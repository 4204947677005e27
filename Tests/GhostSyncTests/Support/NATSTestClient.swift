import Glibc
@testable import GhostSync

/// A blocking NATS client built only on the protocol layer (`NATSParser`, `NATSCommand`), for
/// tests against a real nats-server: one TCP socket on 127.0.0.1, every wait bounded by `poll`
/// with a timeout. Server PINGs are answered as they are read (so a client must be read from
/// at least every ping interval); `-ERR`s are collected in `errors`; everything else is queued
/// in order for `next`/`nextMessage`.
final class NATSTestClient {
    struct Failure: Error, CustomStringConvertible {
        let description: String
        init(_ description: String) { self.description = description }
        static let timeout = "timed out waiting for the server"
        var isTimeout: Bool { description == Self.timeout }
    }

    let fd: Int32
    /// The server's first INFO (later ones are queued as `.info`).
    private(set) var info: NATSServerInfo
    /// Every `-ERR` text received, in order.
    private(set) var errors: [String] = []
    /// How many server PINGs this client has answered.
    private(set) var pingsAnswered = 0
    /// Whether the server has closed the connection.
    private(set) var closed = false
    /// Whether to answer server PINGs (turn off to be found stale).
    var answersPings = true
    private var parser: NATSParser
    private var received: [NATSReceived] = []
    private var chunk = [UInt8](repeating: 0, count: 64 * 1024)
    private var nextSID: UInt64 = 1000
    private var nextInbox = 0
    private let inboxPrefix: String

    /// Connects, reads INFO, sends CONNECT and PING and waits for the PONG (throws on `-ERR`).
    init(port: UInt16, name: String = "ghostsync-test", echo: Bool = false, headers: Bool = true, noResponders: Bool = true, timeout: Duration = .seconds(10)) throws {
        let address = try SocketAddress(parsing: "127.0.0.1:\(port)")
        let socketFD = socket(address.family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard socketFD >= 0 else { throw Failure("socket: errno \(errno)") }
        guard address.withSockAddr({ connect(socketFD, $0, $1) }) == 0 else {
            let code = errno
            Glibc.close(socketFD)
            throw Failure("connect to \(port): errno \(code)")
        }
        var one: Int32 = 1
        setsockopt(socketFD, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        fd = socketFD
        parser = NATSParser(maxPayload: 1 << 20)
        info = NATSServerInfo(serverID: "", maxPayload: 0)
        inboxPrefix = "_INBOX.test\(UInt32.random(in: 0...UInt32.max))"
        guard case .info(let first) = try next(timeout: timeout) else { throw Failure("the server did not open with INFO") }
        info = first
        parser.maxPayload = first.maxPayload
        var output: [UInt8] = []
        try NATSCommand.connect(name: name, echo: echo, headers: headers, noResponders: noResponders, into: &output)
        NATSCommand.ping(into: &output)
        try write(output)
        try waitForPong(timeout: timeout, failingOnError: true)
    }

    deinit { Glibc.close(fd) }

    func close() { shutdown(fd, Int32(SHUT_RDWR)) }

    // MARK: Commands

    /// Encodes with `body` and writes the bytes.
    func send(_ body: (inout [UInt8]) throws(NATSProtocolError) -> Void) throws {
        var output: [UInt8] = []
        try body(&output)
        try write(output)
    }

    /// Subscribes (with a fresh sid unless one is given); returns the sid.
    @discardableResult
    func subscribe(_ subject: String, queue: String? = nil, sid: UInt64? = nil) throws -> UInt64 {
        let sid = sid ?? { nextSID += 1; return nextSID }()
        try send { output throws(NATSProtocolError) in try NATSCommand.subscribe(subject: subject, queue: queue, sid: sid, into: &output) }
        return sid
    }

    func unsubscribe(_ sid: UInt64, max: UInt64? = nil) throws {
        try send { output in NATSCommand.unsubscribe(sid: sid, max: max, into: &output) }
    }

    /// PUB, or HPUB when `headers` is given.
    func publish(_ subject: String, replyTo: String? = nil, headers: [(name: String, value: String)]? = nil, _ payload: [UInt8] = []) throws {
        try payload.withUnsafeBytes { payload throws in
            try send { output throws(NATSProtocolError) in
                if let headers {
                    try NATSCommand.publish(subject: subject, replyTo: replyTo, headers: headers, payload: payload, into: &output)
                } else {
                    try NATSCommand.publish(subject: subject, replyTo: replyTo, payload: payload, into: &output)
                }
            }
        }
    }

    /// Writes raw bytes (for what the encoders refuse to produce).
    func write(_ bytes: [UInt8]) throws {
        var sent = 0
        while sent < bytes.count {
            let count = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + sent, bytes.count - sent, Int32(MSG_NOSIGNAL)) }
            if count < 0 {
                if errno == EINTR { continue }
                throw Failure("send: errno \(errno)")
            }
            sent += count
        }
    }

    /// PING, then wait for its PONG: every command sent before has been processed, and every
    /// message the server sent this connection because of them has been read (and queued).
    func flush(timeout: Duration = .seconds(10)) throws {
        try send { output in NATSCommand.ping(into: &output) }
        try waitForPong(timeout: timeout, failingOnError: false)
    }

    /// Reads (queueing, answering PINGs) whatever arrives for `duration`; throws only if the
    /// connection fails.
    func read(for duration: Duration) throws {
        let deadline = ContinuousClock.now + duration
        while !closed, ContinuousClock.now < deadline {
            do { try fill(until: deadline) } catch let failure as Failure where failure.isTimeout { return }
        }
    }

    /// A fresh inbox subject for one request's reply.
    func newInbox() -> String {
        nextInbox += 1
        return "\(inboxPrefix).\(nextInbox)"
    }

    /// A request: SUB a fresh inbox (UNSUB after one message), publish with it as reply, wait
    /// for the reply (a 503 status HMSG when nobody serves the subject).
    func request(_ subject: String, headers: [(name: String, value: String)]? = nil, _ payload: [UInt8] = [], timeout: Duration = .seconds(10)) throws -> NATSReceivedMessage {
        let inbox = newInbox()
        let sid = try subscribe(inbox)
        try unsubscribe(sid, max: 1)
        try publish(subject, replyTo: inbox, headers: headers, payload)
        return try nextMessage(timeout: timeout) { $0.sid == sid }
    }

    // MARK: Receiving

    /// The next operation (PINGs answered and skipped unless `answersPings` is off), waiting at
    /// most `timeout`.
    func next(timeout: Duration = .seconds(10)) throws -> NATSReceived {
        let deadline = ContinuousClock.now + timeout
        while received.isEmpty { try fill(until: deadline) }
        return received.removeFirst()
    }

    /// The next message matching `predicate`; operations before it that do not match stay
    /// queued in order (other messages) or are dropped (PONG, +OK, INFO).
    func nextMessage(timeout: Duration = .seconds(10), where predicate: (NATSReceivedMessage) -> Bool = { _ in true }) throws -> NATSReceivedMessage {
        let deadline = ContinuousClock.now + timeout
        var scanned = 0
        while true {
            while scanned < received.count {
                if case .message(let message) = received[scanned] {
                    if predicate(message) {
                        received.remove(at: scanned)
                        return message
                    }
                    scanned += 1
                } else {
                    received.remove(at: scanned)
                }
            }
            try fill(until: deadline)
        }
    }

    /// The messages queued now (after a `flush`, all that were sent before it), removed.
    func takeMessages() -> [NATSReceivedMessage] {
        let messages = received.compactMap { operation -> NATSReceivedMessage? in
            if case .message(let message) = operation { return message }
            return nil
        }
        received.removeAll { if case .message = $0 { return true } else { return false } }
        return messages
    }

    /// The next `-ERR` text, waiting at most `timeout`.
    func nextError(timeout: Duration = .seconds(10)) throws -> String {
        let deadline = ContinuousClock.now + timeout
        let seen = errors.count
        while errors.count == seen { try fill(until: deadline) }
        return errors[seen]
    }

    /// Reads until the server closes the connection (true) or `timeout` passes (false).
    func waitForClose(timeout: Duration) throws -> Bool {
        let deadline = ContinuousClock.now + timeout
        while !closed {
            do { try fill(until: deadline) } catch let failure as Failure where failure.isTimeout { return false }
        }
        return true
    }

    /// Waits for the next PONG; with `failingOnError`, an `-ERR` before it is thrown.
    private func waitForPong(timeout: Duration, failingOnError: Bool) throws {
        let deadline = ContinuousClock.now + timeout
        let errorsBefore = errors.count
        var scanned = 0
        while true {
            if failingOnError, errors.count > errorsBefore { throw Failure("-ERR '\(errors[errorsBefore])' while waiting for PONG") }
            while scanned < received.count {
                if case .pong = received[scanned] {
                    received.remove(at: scanned)
                    return
                }
                scanned += 1
            }
            try fill(until: deadline)
        }
    }

    /// One read (waiting until `deadline`), parsed into `received`.
    private func fill(until deadline: ContinuousClock.Instant) throws {
        if closed { throw Failure("connection closed by the server; errors: \(errors)") }
        let remaining = deadline - ContinuousClock.now
        guard remaining > .zero else { throw Failure(Failure.timeout) }
        var descriptor = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        let millis = Int32(clamping: remaining.components.seconds * 1000 + remaining.components.attoseconds / 1_000_000_000_000_000 + 1)
        let ready = poll(&descriptor, 1, millis)
        if ready < 0 {
            if errno == EINTR { return }
            throw Failure("poll: errno \(errno)")
        }
        if ready == 0 { throw Failure(Failure.timeout) }
        let count = chunk.withUnsafeMutableBytes { Glibc.recv(fd, $0.baseAddress, $0.count, 0) }
        if count == 0 || (count < 0 && errno == ECONNRESET) {
            closed = true
            return
        }
        if count < 0 {
            if errno == EINTR || errno == EAGAIN { return }
            throw Failure("recv: errno \(errno)")
        }
        var pongs: [UInt8] = []
        var operations: [NATSReceived] = []
        try chunk.withUnsafeBytes { raw in
            try parser.feed(UnsafeRawBufferPointer(rebasing: raw[..<count])) { operation in
                operations.append(NATSReceived(operation))
            }
        }
        for operation in operations {
            switch operation {
            case .ping where answersPings:
                NATSCommand.pong(into: &pongs)
                pingsAnswered += 1
            case .error(let text):
                errors.append(text)
            default:
                received.append(operation)
            }
        }
        if !pongs.isEmpty { try write(pongs) }
    }
}
