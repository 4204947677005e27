import Glibc
import Testing
@testable import GhostSync

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// A deliberately simple blocking client that speaks raw bytes, for tests that must misbehave (malformed frames, half frames, unanswered pings, never reading): real TCP on
/// 127.0.0.1, every wait bounded by `poll` with a timeout.
final class RawClient {
    enum Failure: Error, CustomStringConvertible {
        case timedOut(String)
        case closed
        case system(String, Int32)

        var description: String {
            switch self {
            case .timedOut(let what): return "timed out waiting for \(what)"
            case .closed: return "connection closed"
            case .system(let call, let code): return "\(call): errno \(code)"
            }
        }
    }

    let fd: Int32
    /// Received bytes; `buffer[consumed...]` is not yet decoded.
    private var buffer: [UInt8] = []
    private var consumed = 0
    private var chunk = [UInt8](repeating: 0, count: 64 * 1024)

    /// Connects to `host:port`, from the local address `source` when given (e.g. 127.0.0.2).
    /// `receiveBuffer` fixes the kernel's receive buffer before the connection is made, so the
    /// window the peer sees is never larger (set afterwards, a larger window is already agreed).
    init(port: UInt16, host: String = "127.0.0.1", source: String? = nil, receiveBuffer: Int32? = nil) throws {
        let address = try SocketAddress(parsing: "\(host):\(port)")
        fd = socket(address.family, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw Failure.system("socket", errno) }
        if let receiveBuffer { Self.setReceiveBuffer(of: fd, to: receiveBuffer) }
        if let source {
            let local = try SocketAddress(parsing: "\(source):0")
            guard local.withSockAddr({ bind(fd, $0, $1) }) == 0 else {
                let code = errno
                Glibc.close(fd)
                throw Failure.system("bind", code)
            }
        }
        let connected = address.withSockAddr { connect(fd, $0, $1) }
        if connected != 0 {
            let code = errno
            Glibc.close(fd)
            throw Failure.system("connect", code)
        }
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
    }

    deinit { Glibc.close(fd) }

    /// Makes the kernel receive buffer small, so a client that stops reading backs up quickly.
    /// Below the loopback MSS (64 KiB) the peer sends only on persist-timer probes, so keep it
    /// larger for a client that must later drain a backlog quickly.
    func shrinkReceiveBuffer(to bytes: Int32 = 4096) {
        Self.setReceiveBuffer(of: fd, to: bytes)
    }

    /// SO_RCVBUF (the kernel doubles it for its bookkeeping).
    static func setReceiveBuffer(of fd: Int32, to bytes: Int32) {
        var size = bytes
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
    }

    func send(_ message: ClientWire) throws {
        try sendRaw(message.encodedFrame())
    }

    func sendRaw(_ bytes: [UInt8]) throws {
        try Self.sendAll(bytes, to: fd)
    }

    /// Sends every byte on a blocking socket (retrying EINTR); the test clients share it.
    static func sendAll(_ bytes: [UInt8], to fd: Int32) throws {
        var sent = 0
        while sent < bytes.count {
            let count = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + sent, bytes.count - sent, Int32(MSG_NOSIGNAL)) }
            if count < 0 {
                if errno == EINTR { continue }
                throw Failure.system("send", errno)
            }
            sent += count
        }
    }

    func join(_ roomID: String) throws -> UUID {
        try send(.joinRoom(roomID))
        let reply = try receive()
        guard case .joined(let clientID, let joined) = reply, joined == roomID else {
            throw Failure.timedOut("Joined(\(roomID)), got \(reply)")
        }
        return clientID
    }

    /// The next frame from the server. Server Pings are answered and skipped unless
    /// `answeringPings` is false.
    func receive(timeout: Duration = .seconds(10), answeringPings: Bool = true) throws -> ServerWire {
        let deadline = ContinuousClock.now + timeout
        while true {
            if let message = try decodeBuffered() {
                if answeringPings, message == .ping {
                    try send(.pong)
                    continue
                }
                return message
            }
            try fill(until: deadline, what: "a frame")
        }
    }

    /// The next frame, if one arrives within `timeout` (nil when none did).
    func receiveIfAny(within timeout: Duration, answeringPings: Bool = true) throws -> ServerWire? {
        do {
            return try receive(timeout: timeout, answeringPings: answeringPings)
        } catch Failure.timedOut {
            return nil
        }
    }

    /// Waits until the server closes the connection; true for a clean end-of-stream, false for a
    /// reset. Frames that arrive first are skipped.
    func waitForClose(timeout: Duration = .seconds(10)) throws -> Bool {
        let deadline = ContinuousClock.now + timeout
        while true {
            do {
                buffer.removeAll()
                consumed = 0
                try fill(until: deadline, what: "close")
            } catch Failure.closed {
                return true
            } catch Failure.system(_, let code) where code == ECONNRESET {
                return false
            }
        }
    }

    /// The server must close this connection without sending anything.
    func expectClosedWithoutAFrame(sourceLocation: SourceLocation = #_sourceLocation) {
        do {
            let message = try receive(timeout: .seconds(5), answeringPings: false)
            Issue.record("expected a close, got \(message)", sourceLocation: sourceLocation)
        } catch Failure.closed {
        } catch {
            Issue.record("expected a clean close, got \(error)", sourceLocation: sourceLocation)
        }
    }

    func close() {
        shutdown(fd, Int32(SHUT_RDWR))
    }

    /// Reads and throws away whole frames until nothing has arrived for `quiet` (the peer's
    /// send queue is then empty); returns how many. A partial frame stays buffered.
    @discardableResult
    func discardUntilQuiet(_ quiet: Duration = .milliseconds(300)) throws -> Int {
        var discarded = 0
        while true {
            while try decodeBuffered() != nil { discarded += 1 }
            do {
                try fill(until: ContinuousClock.now + quiet, what: "quiet")
            } catch Failure.timedOut {
                return discarded
            }
        }
    }

    private func decodeBuffered() throws -> ServerWire? {
        let available = buffer.count - consumed
        guard available >= 4 else { return nil }
        let start = consumed
        let length = Int(UInt32(buffer[start]) << 24 | UInt32(buffer[start + 1]) << 16 | UInt32(buffer[start + 2]) << 8 | UInt32(buffer[start + 3]))
        guard available >= 4 + length else { return nil }
        let payload = Array(buffer[(start + 4)..<(start + 4 + length)])
        consumed += 4 + length
        if consumed == buffer.count {
            buffer.removeAll(keepingCapacity: true)
            consumed = 0
        }
        return try ServerWire(payload: payload)
    }

    private func fill(until deadline: ContinuousClock.Instant, what: String) throws {
        let remaining = deadline - ContinuousClock.now
        guard remaining > .zero else { throw Failure.timedOut(what) }
        var descriptor = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        let millis = Int32(clamping: remaining.components.seconds * 1000 + remaining.components.attoseconds / 1_000_000_000_000_000 + 1)
        let ready = poll(&descriptor, 1, millis)
        if ready < 0 {
            if errno == EINTR { return }
            throw Failure.system("poll", errno)
        }
        if ready == 0 { throw Failure.timedOut(what) }
        let count = chunk.withUnsafeMutableBytes { Glibc.recv(fd, $0.baseAddress, $0.count, 0) }
        if count == 0 { throw Failure.closed }
        if count < 0 {
            if errno == EINTR || errno == EAGAIN { return }
            throw Failure.system("recv", errno)
        }
        if consumed > 0 {
            buffer.removeFirst(consumed)
            consumed = 0
        }
        buffer.append(contentsOf: chunk[0..<count])
    }
}

extension ServerWire {
    var isPlayerJoined: Bool {
        if case .playerJoined = self { return true }
        return false
    }

    var isPlayerLeft: Bool {
        if case .playerLeft = self { return true }
        return false
    }
}
