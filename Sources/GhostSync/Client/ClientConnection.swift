import CGhostSyncShims
import Glibc
import Synchronization

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// One client socket and its state, shared by the reactor thread (reads, connect completion,
/// EPOLLOUT) and the tasks calling the `Client` (sends, receives, close). All state is behind one
/// mutex; continuations are resumed only after it is released.
///
/// Sends are written straight from the caller's task under the mutex — frame by frame, never
/// interleaved — and whatever the socket does not take is queued and finished by the reactor.
/// Received frames queue up until `recv()` takes them; past `inboxLimit` frames the reactor
/// stops reading, so a client that stops calling `recv()` pushes back on the server (which then
/// drops frames for it and, as in the original, eventually disconnects it).
final class ClientConnection: Sendable {
    typealias Waiter = CheckedContinuation<ServerWire?, any Error>

    private enum Phase {
        case connecting
        case open
        case closedByPeer
        case failed(SyncError)
        case closedLocally
    }

    private struct State {
        var phase: Phase = .connecting
        /// The TCP handshake completed. Stays true after the phase moves on: a server may
        /// close (or send and close) before `connect` has parked its continuation, and
        /// the connection was still made; `recv` then reports what came and the end.
        var established = false
        var descriptorOpen = true
        var token: UInt64 = 0
        var connectWaiter: CheckedContinuation<Void, any Error>?
        var decoder: FrameDecoder
        var inbox: [ServerWire] = []
        var inboxHead = 0
        var waiters: [(id: UInt64, continuation: Waiter)] = []
        var cancelledWaiters: Set<UInt64> = []
        var nextWaiterID: UInt64 = 0
        var outbound: [UInt8] = []
        var outboundOffset = 0
        var readingPaused = false
        var interest: UInt32 = 0
        var failureReported = false
        var clientID: UUID?

        var inboxCount: Int { inbox.count - inboxHead }
        var isTerminal: Bool {
            switch phase {
            case .connecting, .open: return false
            default: return true
            }
        }
    }

    /// Collected while the mutex is held, run after it is released.
    private struct Resumptions {
        var waiters: [(Waiter, Result<ServerWire?, any Error>)] = []
        var connect: (CheckedContinuation<Void, any Error>, Result<Void, any Error>)?

        func run() {
            if let (continuation, result) = connect { continuation.resume(with: result) }
            for (continuation, result) in waiters { continuation.resume(with: result) }
        }
    }

    static let inboxLimit = 4096

    let fd: Int32
    let remote: SocketAddress
    private let state: Locked<State>

    private init(fd: Int32, remote: SocketAddress, maxPayload: Int) {
        self.fd = fd
        self.remote = remote
        // `maxPayload` is the relay's limit on client frames; the relay's own frames may be
        // `relayOverhead` bytes larger (a relayed Broadcast carries the sender's ID).
        let receiveLimit = min(maxPayload, ServerConfiguration.maxPayloadLimit) + WireSize.relayOverhead
        self.state = Locked(State(decoder: FrameDecoder(maxPayload: receiveLimit)))
    }

    deinit {
        close()
    }

    // MARK: Connecting

    static func connect(to remote: SocketAddress, maxPayload: Int) async throws(SyncError) -> ClientConnection {
        let fd = socket(remote.family, gs_SOCK_STREAM | gs_SOCK_NONBLOCK | gs_SOCK_CLOEXEC, 0)
        if fd < 0 { throw .io(errno) }
        try? Syscall.setOption(fd, level: Int32(IPPROTO_TCP), name: TCP_NODELAY, value: 1, call: "setsockopt(TCP_NODELAY)")
        let connection = ClientConnection(fd: fd, remote: remote, maxPayload: maxPayload)
        let started = remote.withSockAddr { Glibc.connect(fd, $0, $1) }
        let immediate = started == 0
        if !immediate && errno != EINPROGRESS {
            let code = errno
            connection.close()
            throw refusal(code, remote)
        }
        let reactor = ClientReactor.shared
        let token = reactor.makeToken()
        let interest = immediate ? gs_EPOLLIN | gs_EPOLLRDHUP : gs_EPOLLOUT
        connection.state.withLock { state in
            state.token = token
            state.interest = interest
            if immediate {
                state.phase = .open
                state.established = true
            }
        }
        do {
            try reactor.register(connection, token: token, events: interest)
        } catch {
            connection.close()
            throw .io(error.errno)
        }
        if immediate { return connection }
        do {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let outcome: Result<Void, any Error>? = connection.state.withLock { state in
                    if state.established { return .success(()) }
                    switch state.phase {
                    case .connecting:
                        state.connectWaiter = continuation
                        return nil
                    case .failed(let error): return .failure(error)
                    default: return .failure(SyncError.connectionReset)
                    }
                }
                if let outcome { continuation.resume(with: outcome) }
            }
        } catch {
            connection.close()
            throw (error as? SyncError) ?? .connectionReset
        }
        return connection
    }

    private static func refusal(_ code: Int32, _ remote: SocketAddress) -> SyncError {
        switch code {
        case ECONNREFUSED:
            return .connectionRefused("connection refused by \(remote): no ghost-sync server is listening there (is the relay running, and on that port?)")
        case ETIMEDOUT, EHOSTUNREACH, ENETUNREACH:
            return .connectionRefused("cannot reach \(remote): \(String(cString: strerror(code)))")
        default:
            return .io(code)
        }
    }

    // MARK: Reactor side

    /// Called on the reactor thread for each epoll event of this connection.
    func handle(_ events: UInt32, scratch: UnsafeMutableRawBufferPointer) {
        var resumptions = Resumptions()
        state.withLock { state in
            guard state.descriptorOpen else { return }
            if case .connecting = state.phase {
                finishConnect(&state, &resumptions)
                return
            }
            guard case .open = state.phase else { return }
            if events & gs_EPOLLOUT != 0 { flushOutbound(&state) }
            if events & (gs_EPOLLIN | gs_EPOLLERR | gs_EPOLLHUP | gs_EPOLLRDHUP) != 0, !state.readingPaused {
                readAvailable(&state, scratch: scratch)
            }
            deliver(&state, &resumptions)
            updateInterest(&state)
        }
        resumptions.run()
    }

    private func finishConnect(_ state: inout State, _ resumptions: inout Resumptions) {
        var error: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length)
        if error == 0 {
            state.phase = .open
            state.established = true
            updateInterest(&state)
            if let waiter = state.connectWaiter { resumptions.connect = (waiter, .success(())) }
        } else {
            let failure = Self.refusal(error, remote)
            terminate(&state, .failed(failure))
            if let waiter = state.connectWaiter { resumptions.connect = (waiter, .failure(failure)) }
        }
        state.connectWaiter = nil
    }

    private func readAvailable(_ state: inout State, scratch: UnsafeMutableRawBufferPointer) {
        // A few reads per event: enough to drain a burst, bounded so other clients get their turn.
        for _ in 0..<4 {
            let result: Syscall.IOResult
            do {
                result = try Syscall.read(fd, into: scratch)
            } catch {
                terminate(&state, .failed(error.errno == ECONNRESET ? .connectionReset : .io(error.errno)))
                return
            }
            switch result {
            case .wouldBlock:
                return
            case .endOfFile:
                terminate(&state, .closedByPeer)
                return
            case .transferred(let count):
                var failure: SyncError?
                do throws(WireError) {
                    _ = try state.decoder.feed(UnsafeRawBufferPointer(rebasing: scratch[0..<count])) { payload in
                        do throws(WireError) {
                            let message = try ServerWire(payload: payload)
                            if case .joined(let clientID, _) = message { state.clientID = clientID }
                            state.inbox.append(message)
                            return .proceed
                        } catch {
                            failure = .protocol(error.description)
                            return .stop
                        }
                    }
                } catch {
                    if case .payloadTooLarge(let length, let limit) = error {
                        failure = .payloadTooLarge(length: length, limit: limit)
                    } else {
                        failure = .protocol(error.description)
                    }
                }
                if let failure {
                    terminate(&state, .failed(failure))
                    return
                }
                if state.inboxCount >= Self.inboxLimit {
                    state.readingPaused = true
                    return
                }
            }
        }
    }

    /// Hands queued frames to waiting receivers; at the end of the stream, tells them so.
    private func deliver(_ state: inout State, _ resumptions: inout Resumptions) {
        while !state.waiters.isEmpty && state.inboxCount > 0 {
            let waiter = state.waiters.removeFirst()
            resumptions.waiters.append((waiter.continuation, .success(popMessage(&state))))
        }
        guard state.isTerminal, state.inboxCount == 0 else { return }
        for waiter in state.waiters {
            resumptions.waiters.append((waiter.continuation, endOfStream(&state)))
        }
        state.waiters.removeAll()
    }

    private func endOfStream(_ state: inout State) -> Result<ServerWire?, any Error> {
        if case .failed(let error) = state.phase, !state.failureReported {
            state.failureReported = true
            return .failure(error)
        }
        return .success(nil)
    }

    private func popMessage(_ state: inout State) -> ServerWire {
        let message = state.inbox[state.inboxHead]
        state.inboxHead += 1
        if state.inboxHead == state.inbox.count {
            state.inbox.removeAll(keepingCapacity: true)
            state.inboxHead = 0
        } else if state.inboxHead > 1024 && state.inboxHead * 2 > state.inbox.count {
            state.inbox.removeFirst(state.inboxHead)
            state.inboxHead = 0
        }
        if state.readingPaused && state.inboxCount < Self.inboxLimit / 2 {
            state.readingPaused = false
            updateInterest(&state)
        }
        return message
    }

    private func flushOutbound(_ state: inout State) {
        while state.outboundOffset < state.outbound.count {
            let result = state.outbound.withUnsafeBytes { raw in
                Result { () throws(SystemError) -> Syscall.IOResult in
                    try Syscall.send(fd, UnsafeRawBufferPointer(rebasing: raw[state.outboundOffset...]))
                }
            }
            switch result {
            case .success(.transferred(let count)):
                state.outboundOffset += count
            case .success:
                return
            case .failure:
                terminate(&state, .failed(.connectionReset))
                return
            }
        }
        state.outbound.removeAll(keepingCapacity: state.outbound.capacity <= 64 * 1024)
        state.outboundOffset = 0
    }

    private func updateInterest(_ state: inout State) {
        guard state.descriptorOpen, case .open = state.phase else { return }
        var wanted: UInt32 = 0
        if !state.readingPaused { wanted |= gs_EPOLLIN | gs_EPOLLRDHUP }
        if state.outboundOffset < state.outbound.count { wanted |= gs_EPOLLOUT }
        if wanted != state.interest {
            state.interest = wanted
            ClientReactor.shared.update(fd, token: state.token, events: wanted)
        }
    }

    /// Ends the connection for good: stops polling and closes the descriptor.
    private func terminate(_ state: inout State, _ phase: Phase) {
        if !state.isTerminal { state.phase = phase }
        guard state.descriptorOpen else { return }
        state.descriptorOpen = false
        if state.token != 0 { ClientReactor.shared.unregister(fd, token: state.token) }
        Syscall.close(fd)
        state.outbound = []
        state.outboundOffset = 0
    }

    // MARK: Caller side

    var clientID: UUID? { state.withLock { $0.clientID } }

    /// Sends one frame: `head` then `body`, written in one `sendmsg` when the queue is empty.
    /// Returns once the kernel has it or it is queued behind earlier frames.
    func send(head: UnsafeRawBufferPointer, body: UnsafeRawBufferPointer) throws(SyncError) {
        var resumptions = Resumptions()
        let outcome: Result<Void, SyncError> = state.withLock { state in
            guard case .open = state.phase else { return .failure(.connectionReset) }
            var skip = 0
            if state.outboundOffset == state.outbound.count {
                // Two iovecs on the stack: no allocation per sent message.
                var vectors = (
                    iovec(iov_base: UnsafeMutableRawPointer(mutating: head.baseAddress), iov_len: head.count),
                    iovec(iov_base: UnsafeMutableRawPointer(mutating: body.baseAddress), iov_len: body.count))
                let result = withUnsafeMutableBytes(of: &vectors) { raw in
                    Result { () throws(SystemError) -> Syscall.IOResult in
                        try Syscall.writev(fd, raw.baseAddress!.assumingMemoryBound(to: iovec.self), count: body.isEmpty ? 1 : 2)
                    }
                }
                switch result {
                case .success(.transferred(let count)): skip = count
                case .success: skip = 0
                case .failure:
                    terminate(&state, .failed(.connectionReset))
                    deliver(&state, &resumptions)
                    return .failure(.connectionReset)
                }
            }
            if skip < head.count + body.count {
                if skip < head.count { state.outbound.append(contentsOf: head[skip...]) }
                state.outbound.append(contentsOf: body[max(0, skip - head.count)...])
                updateInterest(&state)
            }
            return .success(())
        }
        resumptions.run()
        try outcome.get()
    }

    /// The next frame from the server, waiting for it; nil at a clean end of stream.
    /// Cancellation ends the wait with `CancellationError` and leaves every frame queued.
    func receive() async throws -> ServerWire? {
        let id: UInt64 = state.withLock { state in
            defer { state.nextWaiterID += 1 }
            return state.nextWaiterID
        }
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: Waiter) in
                let ready: Result<ServerWire?, any Error>? = state.withLock { state in
                    if state.cancelledWaiters.remove(id) != nil { return .failure(CancellationError()) }
                    if state.inboxCount > 0 { return .success(popMessage(&state)) }
                    if state.isTerminal { return endOfStream(&state) }
                    state.waiters.append((id, continuation))
                    return nil
                }
                if let ready { continuation.resume(with: ready) }
            }
        } onCancel: {
            let waiter: Waiter? = state.withLock { state in
                if let index = state.waiters.firstIndex(where: { $0.id == id }) {
                    return state.waiters.remove(at: index).continuation
                }
                state.cancelledWaiters.insert(id)
                return nil
            }
            waiter?.resume(throwing: CancellationError())
        }
    }

    /// Closes the socket; pending and later receives end with nil. Idempotent.
    func close() {
        var resumptions = Resumptions()
        state.withLock { state in
            terminate(&state, .closedLocally)
            state.inbox.removeAll()
            state.inboxHead = 0
            deliver(&state, &resumptions)
            if let waiter = state.connectWaiter {
                resumptions.connect = (waiter, .failure(SyncError.connectionReset))
                state.connectWaiter = nil
            }
        }
        resumptions.run()
    }
}
