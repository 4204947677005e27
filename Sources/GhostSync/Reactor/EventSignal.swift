import Glibc

/// An eventfd used to wake a worker's epoll_wait from another thread.
/// `signal` may be called from any thread; `drain` only by the owning worker.
package struct EventSignal: Sendable {
    package let fd: Int32

    package init() throws(SystemError) {
        fd = try Syscall.eventCreate()
    }

    package func signal() {
        var one: UInt64 = 1
        // EAGAIN means the counter is saturated: the worker is already due to wake.
        _ = withUnsafeBytes(of: &one) { try? Syscall.write(fd, $0) }
    }

    package func drain() {
        var value: UInt64 = 0
        _ = withUnsafeMutableBytes(of: &value) { try? Syscall.read(fd, into: $0) }
    }

    package func close() {
        Syscall.close(fd)
    }
}
