import CGhostSyncShims
import Glibc
import Synchronization

/// The event loop every `Client` in the process shares: one thread (`ghost-client`) with its own
/// epoll instance. It reads sockets and completes connects; async callers are resumed through
/// continuations, so no Swift concurrency thread ever blocks in a syscall that can wait.
/// Registration and interest changes (`epoll_ctl`) are safe from any thread.
final class ClientReactor: Sendable {
    static let shared = ClientReactor()

    private let epoll: Epoll
    private let connections = Locked<[UInt64: ClientConnection]>([:])
    private let nextToken = Atomic<UInt64>(1)

    private init() {
        do {
            epoll = try Epoll()
        } catch {
            fatalError("GhostSync client reactor: \(error)")
        }
        do {
            try NativeThread.start(name: "ghost-client", detached: true) { [self] in run() }
        } catch {
            fatalError("GhostSync client reactor: \(error)")
        }
    }

    /// A fresh token; the connection must know it before `register` (an event can arrive at once).
    func makeToken() -> UInt64 {
        nextToken.wrappingAdd(1, ordering: .relaxed).oldValue
    }

    func register(_ connection: ClientConnection, token: UInt64, events: UInt32) throws(SystemError) {
        connections.withLock { $0[token] = connection }
        do {
            try epoll.add(connection.fd, events: events, token: token)
        } catch {
            _ = connections.withLock { $0.removeValue(forKey: token) }
            throw error
        }
    }

    func update(_ fd: Int32, token: UInt64, events: UInt32) {
        try? epoll.modify(fd, events: events, token: token)
    }

    /// Call before closing `fd`.
    func unregister(_ fd: Int32, token: UInt64) {
        epoll.remove(fd)
        _ = connections.withLock { $0.removeValue(forKey: token) }
    }

    private func run() {
        let capacity = 256
        let events = UnsafeMutablePointer<epoll_event>.allocate(capacity: capacity)
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 64 * 1024, alignment: 16)
        while true {
            guard let count = try? Syscall.epollWait(epoll.fd, events, capacity: capacity, timeoutMilliseconds: -1) else {
                continue
            }
            for index in 0..<count {
                let event = events[index]
                guard let connection = connections.withLock({ $0[event.data.u64] }) else { continue }
                connection.handle(event.events, scratch: buffer)
            }
        }
    }
}
