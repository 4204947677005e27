import CGhostSyncShims
import GhostSync
import Glibc

/// A request/response protocol served by the `OpsServer`: bytes in, bytes out.
package protocol OpsProtocol: Sendable {
    /// Consumes whole requests from the front of `input` and returns the bytes to send back,
    /// and whether to close the connection once they are sent.
    func respond(to input: inout [UInt8]) -> (output: [UInt8], close: Bool)
}

/// A small epoll loop on its own thread (`ghost-ops`) serving the operations endpoints (control
/// protocol, metrics) so that they never run on, or wait for, a relay worker. Each endpoint is
/// a listener plus an `OpsProtocol`; requests are answered in arrival order.
package final class OpsServer: Sendable {
    private struct Session {
        let fd: Int32
        let endpoint: Int
        var input: [UInt8] = []
        var output: [UInt8] = []
        var closeWhenFlushed = false
    }

    private struct Endpoint: Sendable {
        let listener: Listener
        let handler: any OpsProtocol
    }

    private let epoll: Epoll
    private let wake: EventSignal
    private let endpoints: [Endpoint]
    private let stopped = Locked(false)
    private let thread: Locked<pthread_t?> = Locked(nil)
    private static let wakeToken = UInt64.max
    /// Listener tokens count down from just below the wake token; sessions use
    /// `endpoint << 32 | fd`, far below them.
    private static func listenerToken(_ endpoint: Int) -> UInt64 { UInt64.max - 1 - UInt64(endpoint) }
    /// A backstop only: each protocol enforces its own, tighter limit (a control frame of 1 MiB
    /// must still fit, with a read's worth of the next one).
    private static let maxInput = 2 << 20

    /// Binds every endpoint; nothing is left open on failure.
    package init(endpoints: [(address: SocketAddress, handler: any OpsProtocol)]) throws(SystemError) {
        var bound: [Endpoint] = []
        do throws(SystemError) {
            for endpoint in endpoints {
                bound.append(Endpoint(listener: try Listener(bindingTo: endpoint.address, backlog: 64), handler: endpoint.handler))
            }
            epoll = try Epoll()
        } catch {
            bound.forEach { $0.listener.close() }
            throw error
        }
        do {
            wake = try EventSignal()
        } catch {
            bound.forEach { $0.listener.close() }
            epoll.close()
            throw error
        }
        self.endpoints = bound
    }

    /// The bound address of each endpoint, in the order given.
    package var addresses: [SocketAddress] { endpoints.map(\.listener.address) }

    package func start() throws(SystemError) {
        for (index, endpoint) in endpoints.enumerated() {
            try epoll.add(endpoint.listener.fd, events: gs_EPOLLIN, token: Self.listenerToken(index))
        }
        try epoll.add(wake.fd, events: gs_EPOLLIN, token: Self.wakeToken)
        let handle = try NativeThread.start(name: "ghost-ops") { [self] in run() }
        thread.withLock { $0 = handle }
    }

    /// Stops the loop, closes every socket, and joins the thread. Idempotent.
    package func stop() {
        let first = stopped.withLock { stopped in
            defer { stopped = true }
            return !stopped
        }
        guard first else { return }
        wake.signal()
        if let handle = thread.withLock({ $0 }) { pthread_join(handle, nil) }
        endpoints.forEach { $0.listener.close() }
        epoll.close()
        wake.close()
    }

    private func run() {
        var sessions: [Int32: Session] = [:]
        let events = UnsafeMutablePointer<epoll_event>.allocate(capacity: 64)
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 16 * 1024, alignment: 8)
        defer {
            for session in sessions.values { Syscall.close(session.fd) }
            events.deallocate()
            buffer.deallocate()
        }
        while !stopped.withLock({ $0 }) {
            guard let count = try? Syscall.epollWait(epoll.fd, events, capacity: 64, timeoutMilliseconds: -1) else { return }
            for index in 0..<count {
                let token = events[index].data.u64
                if token == Self.wakeToken { return }
                if token > Self.listenerToken(endpoints.count) {
                    accept(endpoint: Int(UInt64.max - 1 - token), into: &sessions)
                    continue
                }
                let fd = Int32(truncatingIfNeeded: token & 0xffff_ffff)
                guard var session = sessions[fd] else { continue }
                let keep = service(&session, events: events[index].events, buffer: buffer)
                if keep {
                    sessions[fd] = session
                } else {
                    epoll.remove(fd)
                    Syscall.close(fd)
                    sessions[fd] = nil
                }
            }
        }
    }

    private func accept(endpoint: Int, into sessions: inout [Int32: Session]) {
        while let accepted = try? Syscall.accept(endpoints[endpoint].listener.fd) {
            // Token: endpoint in the high half, descriptor in the low half.
            do {
                try epoll.add(accepted.fd, events: gs_EPOLLIN | gs_EPOLLRDHUP, token: UInt64(endpoint) << 32 | UInt64(UInt32(accepted.fd)))
                sessions[accepted.fd] = Session(fd: accepted.fd, endpoint: endpoint)
            } catch {
                Syscall.close(accepted.fd)
            }
        }
    }

    /// Reads, answers, writes. Returns false when the session should be closed.
    private func service(_ session: inout Session, events: UInt32, buffer: UnsafeMutableRawBufferPointer) -> Bool {
        if events & (gs_EPOLLIN | gs_EPOLLRDHUP | gs_EPOLLHUP | gs_EPOLLERR) != 0 {
            switch (try? Syscall.read(session.fd, into: buffer)) ?? .endOfFile {
            case .transferred(let count):
                session.input.append(contentsOf: buffer[0..<count])
                if session.input.count > Self.maxInput { return false }
                let (output, close) = endpoints[session.endpoint].handler.respond(to: &session.input)
                session.output += output
                session.closeWhenFlushed = session.closeWhenFlushed || close
            case .wouldBlock:
                break
            case .endOfFile:
                return false
            }
        }
        while !session.output.isEmpty {
            let result = session.output.withUnsafeBytes { raw in (try? Syscall.send(session.fd, raw)) ?? .endOfFile }
            switch result {
            case .transferred(let count): session.output.removeFirst(count)
            case .wouldBlock:
                try? epoll.modify(session.fd, events: gs_EPOLLIN | gs_EPOLLOUT, token: UInt64(session.endpoint) << 32 | UInt64(UInt32(session.fd)))
                return true
            case .endOfFile: return false
            }
        }
        if session.closeWhenFlushed { return false }
        try? epoll.modify(session.fd, events: gs_EPOLLIN | gs_EPOLLRDHUP, token: UInt64(session.endpoint) << 32 | UInt64(UInt32(session.fd)))
        return true
    }
}
