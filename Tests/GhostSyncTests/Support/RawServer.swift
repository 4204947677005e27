import Glibc
@testable import GhostSync

/// A listening socket on 127.0.0.1 that a test drives by hand, to play a misbehaving server.
final class RawServer: @unchecked Sendable {
    let fd: Int32
    let port: UInt16

    init() throws {
        let listener = try Listener(bindingTo: SocketAddress(parsing: "127.0.0.1:0"))
        fd = listener.fd
        port = listener.address.port
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
