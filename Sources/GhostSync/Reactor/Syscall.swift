import CGhostSyncShims
import Glibc

/// The one door to the kernel. The calls made per frame (read, send, sendmsg, epoll_wait) go
/// through `syscall(2)` in the C shim, not glibc's cancellation-point wrappers (see shims.h).
/// Every call retries `EINTR` here and reports failure as a
/// `SystemError`, so errno handling lives in one place; would-block is reported as `nil` (or a
/// `.wouldBlock` result) rather than as an error, because on a non-blocking socket it is normal.
package enum Syscall {
    package enum IOResult: Equatable {
        case transferred(Int)
        case wouldBlock
        case endOfFile
    }

    package static func read(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer) throws(SystemError) -> IOResult {
        while true {
            let count = gs_read(fd, buffer.baseAddress, buffer.count)
            if count > 0 { return .transferred(count) }
            if count == 0 { return .endOfFile }
            switch errno {
            case EINTR: continue
            case EAGAIN, EWOULDBLOCK: return .wouldBlock
            case let code: throw SystemError(call: "read", errno: code)
            }
        }
    }

    /// Gathered write (`sendmsg` with MSG_NOSIGNAL: a peer that went away gives EPIPE, never
    /// SIGPIPE, without changing the process's signal dispositions).
    package static func writev(_ fd: Int32, _ vectors: UnsafeMutablePointer<iovec>, count: Int) throws(SystemError) -> IOResult {
        // One buffer: plain send(), which skips copying a msghdr and an iovec array in the kernel.
        if count == 1 {
            return try send(fd, UnsafeRawBufferPointer(start: vectors[0].iov_base, count: vectors[0].iov_len))
        }
        var message = msghdr()
        message.msg_iov = vectors
        message.msg_iovlen = count
        while true {
            let written = gs_sendmsg(fd, &message, Int32(MSG_NOSIGNAL))
            if written >= 0 { return .transferred(written) }
            switch errno {
            case EINTR: continue
            case EAGAIN, EWOULDBLOCK: return .wouldBlock
            case let code: throw SystemError(call: "sendmsg", errno: code)
            }
        }
    }

    package static func write(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) throws(SystemError) -> IOResult {
        while true {
            let written = Glibc.write(fd, bytes.baseAddress, bytes.count)
            if written >= 0 { return .transferred(written) }
            switch errno {
            case EINTR: continue
            case EAGAIN, EWOULDBLOCK: return .wouldBlock
            case let code: throw SystemError(call: "write", errno: code)
            }
        }
    }

    /// `send` with MSG_NOSIGNAL (EPIPE instead of SIGPIPE).
    package static func send(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) throws(SystemError) -> IOResult {
        while true {
            let written = gs_send(fd, bytes.baseAddress, bytes.count, Int32(MSG_NOSIGNAL))
            if written >= 0 { return .transferred(written) }
            switch errno {
            case EINTR: continue
            case EAGAIN, EWOULDBLOCK: return .wouldBlock
            case let code: throw SystemError(call: "send", errno: code)
            }
        }
    }

    /// Accepts one connection, non-blocking and close-on-exec; `nil` when none is waiting.
    package static func accept(_ fd: Int32) throws(SystemError) -> (fd: Int32, address: SocketAddress)? {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        while true {
            let client = withUnsafeMutablePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    gs_accept4(fd, $0, &length, gs_SOCK_NONBLOCK | gs_SOCK_CLOEXEC)
                }
            }
            if client >= 0 { return (client, SocketAddress(storage: storage)) }
            switch errno {
            case EINTR, ECONNABORTED: continue
            case EAGAIN, EWOULDBLOCK: return nil
            case let code: throw SystemError(call: "accept4", errno: code)
            }
        }
    }

    package static func close(_ fd: Int32) {
        // Linux releases the descriptor even when close reports EINTR: never retry.
        _ = Glibc.close(fd)
    }

    package static func shutdownWrite(_ fd: Int32) {
        _ = Glibc.shutdown(fd, Int32(SHUT_WR))
    }

    package static func setOption(_ fd: Int32, level: Int32, name: Int32, value: Int32, call: String) throws(SystemError) {
        var value = value
        if setsockopt(fd, level, name, &value, socklen_t(MemoryLayout<Int32>.size)) != 0 {
            throw SystemError(call: call, errno: errno)
        }
    }

    package static func epollCreate() throws(SystemError) -> Int32 {
        let fd = epoll_create1(Int32(EPOLL_CLOEXEC))
        if fd < 0 { throw SystemError(call: "epoll_create1", errno: errno) }
        return fd
    }

    package static func epollControl(_ epoll: Int32, _ operation: Int32, _ fd: Int32, events: UInt32, token: UInt64) throws(SystemError) {
        var event = epoll_event()
        event.events = events
        event.data.u64 = token
        if epoll_ctl(epoll, operation, fd, &event) != 0 {
            throw SystemError(call: "epoll_ctl", errno: errno)
        }
    }

    /// Waits for events; returns 0 on EINTR so the loop re-evaluates its timers.
    package static func epollWait(_ epoll: Int32, _ events: UnsafeMutablePointer<epoll_event>, capacity: Int, timeoutMilliseconds: Int32) throws(SystemError) -> Int {
        let count = gs_epoll_wait(epoll, events, Int32(capacity), timeoutMilliseconds)
        if count >= 0 { return Int(count) }
        if errno == EINTR { return 0 }
        throw SystemError(call: "epoll_wait", errno: errno)
    }

    package static func eventCreate() throws(SystemError) -> Int32 {
        let fd = eventfd(0, gs_EFD_NONBLOCK | gs_EFD_CLOEXEC)
        if fd < 0 { throw SystemError(call: "eventfd", errno: errno) }
        return fd
    }
}
