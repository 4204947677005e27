import GhostSync
import Glibc

/// A blocking client for the control protocol (what `ghost-sync admin` uses). Every wait is
/// bounded by `timeout`.
public final class ControlClient {
    private let fd: Int32
    private let timeoutMilliseconds: Int32
    private var buffer: [UInt8] = []

    public init(address: String, timeout: Duration = .seconds(5)) throws(RelayError) {
        let remote: SocketAddress
        do { remote = try SocketAddress(parsing: address) } catch { throw RelayError(description: error.description) }
        fd = socket(remote.family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        timeoutMilliseconds = Int32(timeout.components.seconds * 1000)
        guard fd >= 0 else { throw RelayError(description: "socket: errno \(errno)") }
        if remote.withSockAddr({ connect(fd, $0, $1) }) != 0 {
            let code = errno
            Glibc.close(fd)
            throw RelayError(description: code == ECONNREFUSED
                ? "cannot reach the control endpoint at \(remote): is the relay running with --control \(remote)?"
                : "cannot connect to \(remote): \(String(cString: strerror(code)))")
        }
    }

    deinit { Glibc.close(fd) }

    /// Sends one request (command and argument lines) and returns the response's lines.
    public func request(_ lines: [String]) throws(RelayError) -> [String] {
        try response(to: lines.joined(separator: "\n")).split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
    }

    /// Sends one request and returns the response text exactly as the relay sent it
    /// (`OK\nRoom 'arena' created`).
    public func response(to request: String) throws(RelayError) -> String {
        let frame = ControlProtocol.frame(request)
        var sent = 0
        while sent < frame.count {
            let count = frame.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + sent, frame.count - sent, Int32(MSG_NOSIGNAL)) }
            if count <= 0 { throw RelayError(description: "control connection closed while sending") }
            sent += count
        }
        while true {
            if buffer.count >= 4 {
                let length = Int(UInt32(buffer[0]) << 24 | UInt32(buffer[1]) << 16 | UInt32(buffer[2]) << 8 | UInt32(buffer[3]))
                if buffer.count >= 4 + length {
                    let text = String(decoding: buffer[4..<(4 + length)], as: UTF8.self)
                    buffer.removeFirst(4 + length)
                    return text
                }
            }
            var descriptor = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&descriptor, 1, timeoutMilliseconds) == 1 else { throw RelayError(description: "no answer from the control endpoint") }
            var chunk = [UInt8](repeating: 0, count: 16 * 1024)
            let count = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if count <= 0 { throw RelayError(description: "the relay closed the control connection") }
            buffer += chunk[0..<count]
        }
    }
}
