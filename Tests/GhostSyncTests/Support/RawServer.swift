import Glibc
@testable import GhostSync

/// A listening socket on 127.0.0.1 that a test drives by hand, to play a misbehaving server.
final class RawServer: @unchecked Sendable {
    let fd: Int32
    let port: UInt16

    init() throws {
        // A plain listener (no SO_REUSEPORT), so nothing else can bind its port while it lives.
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        let address = try SocketAddress(parsing: "127.0.0.1:0")
        guard fd >= 0, address.withSockAddr({ bind(fd, $0, $1) }) == 0, listen(fd, 16) == 0 else {
            throw TimedOut(what: "a listening socket")
        }
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        _ = withUnsafeMutablePointer(to: &storage) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        self.fd = fd
        port = SocketAddress(storage: storage).port
    }

    private var isOpen = true

    deinit { closeListener() }

    /// Stops listening (idempotent: closing a descriptor twice could close someone else's).
    func closeListener() {
        if isOpen { Glibc.close(fd) }
        isOpen = false
    }

    /// Waits (bounded) for one connection; returns its blocking descriptor.
    func accept(timeout: Int32 = 5000) throws -> Int32 {
        var descriptor = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard poll(&descriptor, 1, timeout) == 1, let accepted = try Syscall.accept(fd) else {
            throw TimedOut(what: "a connection")
        }
        let flags = fcntl(accepted.fd, F_GETFL)
        _ = fcntl(accepted.fd, F_SETFL, flags & ~O_NONBLOCK)
        return accepted.fd
    }

    static func write(_ fd: Int32, _ bytes: [UInt8]) {
        _ = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
    }
}
