import CGhostSyncShims
import Glibc

/// A listening TCP socket with SO_REUSEPORT, so that every worker can own one on the same port
/// and the kernel spreads incoming connections between them.
package struct Listener: Sendable {
    package let fd: Int32
    package let address: SocketAddress

    /// Opens, binds and listens. On failure nothing is left open.
    package init(bindingTo requested: SocketAddress, backlog: Int32 = 1024) throws(SystemError) {
        let fd = socket(requested.family, gs_SOCK_STREAM | gs_SOCK_NONBLOCK | gs_SOCK_CLOEXEC, 0)
        if fd < 0 { throw SystemError(call: "socket", errno: errno) }
        do throws(SystemError) {
            try Syscall.setOption(fd, level: SOL_SOCKET, name: SO_REUSEADDR, value: 1, call: "setsockopt(SO_REUSEADDR)")
            try Syscall.setOption(fd, level: SOL_SOCKET, name: SO_REUSEPORT, value: 1, call: "setsockopt(SO_REUSEPORT)")
            if requested.isIPv6 {
                try Syscall.setOption(fd, level: Int32(IPPROTO_IPV6), name: IPV6_V6ONLY, value: 1, call: "setsockopt(IPV6_V6ONLY)")
            }
            let bound = requested.withSockAddr { bind(fd, $0, $1) }
            if bound != 0 { throw SystemError(call: "bind", errno: errno) }
            if listen(fd, backlog) != 0 { throw SystemError(call: "listen", errno: errno) }
            var storage = sockaddr_storage()
            var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
            let named = withUnsafeMutablePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
            }
            if named != 0 { throw SystemError(call: "getsockname", errno: errno) }
            self.fd = fd
            self.address = SocketAddress(storage: storage)
        } catch {
            Syscall.close(fd)
            throw error
        }
    }

    package func close() {
        Syscall.close(fd)
    }
}

/// Per-connection socket options the relay sets on every accepted client.
enum ClientSocket {
    static func configure(_ fd: Int32) {
        // Frames are small and latency-bound; the writev batching already coalesces.
        try? Syscall.setOption(fd, level: Int32(IPPROTO_TCP), name: TCP_NODELAY, value: 1, call: "setsockopt(TCP_NODELAY)")
    }
}
