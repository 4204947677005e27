import Glibc

/// An eventfd used to wake a worker's epoll_wait from another thread.
/// `signal` may be called from any thread; `drain` only by the owning worker.
struct EventSignal: Sendable {
    let fd: Int32

    init() throws(SystemError) {
        fd = try Syscall.eventCreate()
    }

    func signal() {
        var one: UInt64 = 1
        // EAGAIN means the counter is saturated: the worker is already due to wake.
        _ = withUnsafeBytes(of: &one) { try? Syscall.write(fd, $0) }
    }

    func drain() {
        var value: UInt64 = 0
        _ = withUnsafeMutableBytes(of: &value) { try? Syscall.read(fd, into: $0) }
    }

    func close() {
        Syscall.close(fd)
    }
}
