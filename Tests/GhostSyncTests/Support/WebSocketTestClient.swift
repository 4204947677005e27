import Glibc
import Testing
@testable import GhostSync

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// A blocking WebSocket client that plays a browser (or a hostile one): real TCP on 127.0.0.1,
/// hand-built masked frames, every wait bounded by `poll`.
final class WebSocketTestClient {
    struct Frame: Equatable {
        var fin: Bool
        var opcode: UInt8
        var payload: [UInt8]
    }

    struct HTTPAnswer {
        var status: Int
        var head: String
        var body: [UInt8]
        func header(_ name: String) -> String? {
            for line in head.split(separator: "\r\n").dropFirst() {
                let parts = line.split(separator: ":", maxSplits: 1)
                if parts.count == 2, parts[0].lowercased() == name.lowercased() {
                    return parts[1].trimmingCharacters(in: .whitespaces)
                }
            }
            return nil
        }
    }

    let fd: Int32
    private var buffer: [UInt8] = []
    private var chunk = [UInt8](repeating: 0, count: 64 * 1024)
    private var nextMask: UInt32 = 0x3719_A2C4

    /// `receiveBuffer`: as for `RawClient`, fixed before the connection is made.
    init(port: UInt16, receiveBuffer: Int32? = nil) throws {
        let address = try SocketAddress(parsing: "127.0.0.1:\(port)")
        fd = socket(address.family, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw RawClient.Failure.system("socket", errno) }
        if let receiveBuffer { RawClient.setReceiveBuffer(of: fd, to: receiveBuffer) }
        guard address.withSockAddr({ connect(fd, $0, $1) }) == 0 else {
            let code = errno
            Glibc.close(fd)
            throw RawClient.Failure.system("connect", code)
        }
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
    }

    deinit { Glibc.close(fd) }

    static let sampleKey = "dGhlIHNhbXBsZSBub25jZQ=="

    static func upgradeRequest(path: String = "/", protocols: [String]? = ["ghost-sync.v1"], extra: [String] = []) -> String {
        var lines = [
            "GET \(path) HTTP/1.1", "Host: 127.0.0.1", "Upgrade: websocket", "Connection: keep-alive, Upgrade",
            "Sec-WebSocket-Key: \(sampleKey)", "Sec-WebSocket-Version: 13",
            "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits",
        ]
        if let protocols { lines.append("Sec-WebSocket-Protocol: \(protocols.joined(separator: ", "))") }
        return (lines + extra).joined(separator: "\r\n") + "\r\n\r\n"
    }

    /// Opens a WebSocket (offering `ghost-sync.v1`); throws unless the answer is 101 with the
    /// right accept key.
    static func open(port: UInt16, receiveBuffer: Int32? = nil) throws -> WebSocketTestClient {
        let client = try WebSocketTestClient(port: port, receiveBuffer: receiveBuffer)
        try client.sendRaw(Array(upgradeRequest().utf8))
        let answer = try client.readHTTPAnswer()
        guard answer.status == 101, answer.header("Sec-WebSocket-Accept") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" else {
            throw RawClient.Failure.timedOut("a 101 answer, got \(answer.head)")
        }
        return client
    }

    func sendRaw(_ bytes: [UInt8]) throws {
        try RawClient.sendAll(bytes, to: fd)
    }

    /// One masked frame.
    func sendFrame(opcode: WebSocketOpcode, _ payload: [UInt8], fin: Bool = true) throws {
        nextMask = nextMask &* 1_103_515_245 &+ 12_345
        try sendRaw(WebSocketFrame.clientFrame(opcode: opcode, payload: payload, fin: fin, mask: nextMask))
    }

    /// One relay request as one binary message.
    func send(_ message: ClientWire) throws {
        try sendFrame(opcode: .binary, Array(message.encodedFrame().dropFirst(4)))
    }

    func join(_ roomID: String) throws -> UUID {
        try send(.joinRoom(roomID))
        let reply = try receive()
        guard case .joined(let clientID, let joined) = reply, joined == roomID else {
            throw RawClient.Failure.timedOut("Joined(\(roomID)), got \(reply)")
        }
        return clientID
    }

    /// Reads the HTTP status line and headers (and a Content-Length body).
    func readHTTPAnswer(timeout: Duration = .seconds(10)) throws -> HTTPAnswer {
        let deadline = ContinuousClock.now + timeout
        while true {
            if let end = buffer.withUnsafeBytes({ HTTPRequestHead.endOfHead(in: $0) }) {
                let head = String(decoding: buffer[..<end], as: UTF8.self)
                let status = Int(head.split(separator: " ")[1]) ?? 0
                var answer = HTTPAnswer(status: status, head: head, body: [])
                let length = answer.header("Content-Length").flatMap { Int($0) } ?? 0
                while buffer.count < end + length { try fill(until: deadline, what: "an HTTP body") }
                answer.body = Array(buffer[end..<(end + length)])
                buffer.removeFirst(end + length)
                return answer
            }
            try fill(until: deadline, what: "an HTTP answer")
        }
    }

    /// The next server frame as it is on the wire (unmasked, checked for a minimal header).
    func receiveFrame(timeout: Duration = .seconds(10)) throws -> Frame {
        let deadline = ContinuousClock.now + timeout
        while true {
            if let frame = try decodeBuffered() { return frame }
            try fill(until: deadline, what: "a WebSocket frame")
        }
    }

    /// The next relay message (a binary frame's payload), answering relay Pings unless told
    /// not to; a Close frame throws.
    func receive(timeout: Duration = .seconds(10), answeringPings: Bool = true) throws -> ServerWire {
        while true {
            let frame = try receiveFrame(timeout: timeout)
            guard frame.opcode == 2, frame.fin else { throw RawClient.Failure.timedOut("a binary frame, got \(frame)") }
            let message = try ServerWire(payload: frame.payload)
            if answeringPings && message == .ping {
                try send(.pong)
                continue
            }
            return message
        }
    }

    /// Skips relay messages until a Close frame; returns its code and reason.
    func receiveClose(timeout: Duration = .seconds(10)) throws -> (code: UInt16?, reason: String) {
        while true {
            let frame = try receiveFrame(timeout: timeout)
            guard frame.opcode == 8 else { continue }
            if frame.payload.count < 2 { return (nil, "") }
            return (UInt16(frame.payload[0]) << 8 | UInt16(frame.payload[1]), String(decoding: frame.payload[2...], as: UTF8.self))
        }
    }

    /// Waits for the server's end of the TCP stream: true for a FIN, false for a reset.
    func waitForEndOfStream(timeout: Duration = .seconds(10)) throws -> Bool {
        let deadline = ContinuousClock.now + timeout
        while true {
            do {
                buffer.removeAll()
                try fill(until: deadline, what: "the end of the stream")
            } catch RawClient.Failure.closed {
                return true
            } catch RawClient.Failure.system(_, let code) where code == ECONNRESET {
                return false
            }
        }
    }

    private func decodeBuffered() throws -> Frame? {
        guard buffer.count >= 2 else { return nil }
        let fin = buffer[0] & 0x80 != 0
        let opcode = buffer[0] & 0x0F
        #expect(buffer[0] & 0x70 == 0, "the server sets no RSV bit")
        #expect(buffer[1] & 0x80 == 0, "the server never masks")
        var length = Int(buffer[1] & 0x7F)
        var offset = 2
        if length == 126 {
            guard buffer.count >= 4 else { return nil }
            length = Int(buffer[2]) << 8 | Int(buffer[3])
            #expect(length >= 126, "minimal length encoding")
            offset = 4
        } else if length == 127 {
            guard buffer.count >= 10 else { return nil }
            length = buffer[2..<10].reduce(0) { $0 << 8 | Int($1) }
            #expect(length > 0xFFFF, "minimal length encoding")
            offset = 10
        }
        guard buffer.count >= offset + length else { return nil }
        let frame = Frame(fin: fin, opcode: opcode, payload: Array(buffer[offset..<(offset + length)]))
        buffer.removeFirst(offset + length)
        return frame
    }

    private func fill(until deadline: ContinuousClock.Instant, what: String) throws {
        let remaining = deadline - ContinuousClock.now
        guard remaining > .zero else { throw RawClient.Failure.timedOut(what) }
        var descriptor = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        let millis = Int32(clamping: remaining.components.seconds * 1000 + remaining.components.attoseconds / 1_000_000_000_000_000 + 1)
        let ready = poll(&descriptor, 1, millis)
        if ready < 0 {
            if errno == EINTR { return }
            throw RawClient.Failure.system("poll", errno)
        }
        if ready == 0 { throw RawClient.Failure.timedOut(what) }
        let count = chunk.withUnsafeMutableBytes { Glibc.recv(fd, $0.baseAddress, $0.count, 0) }
        if count == 0 { throw RawClient.Failure.closed }
        if count < 0 {
            if errno == EINTR || errno == EAGAIN { return }
            throw RawClient.Failure.system("recv", errno)
        }
        buffer.append(contentsOf: chunk[0..<count])
    }
}
