import CGhostSyncShims
import Glibc

/// One worker's epoll instance. Level-triggered: a readable socket is read once per loop
/// iteration, so one busy client cannot starve the others on the same worker.
package struct Epoll: Sendable {
    package let fd: Int32

    package init() throws(SystemError) {
        fd = try Syscall.epollCreate()
    }

    package func add(_ descriptor: Int32, events: UInt32, token: UInt64) throws(SystemError) {
        try Syscall.epollControl(fd, gs_EPOLL_CTL_ADD, descriptor, events: events, token: token)
    }

    package func modify(_ descriptor: Int32, events: UInt32, token: UInt64) throws(SystemError) {
        try Syscall.epollControl(fd, gs_EPOLL_CTL_MOD, descriptor, events: events, token: token)
    }

    package func remove(_ descriptor: Int32) {
        try? Syscall.epollControl(fd, gs_EPOLL_CTL_DEL, descriptor, events: 0, token: 0)
    }

    package func close() {
        Syscall.close(fd)
    }
}
