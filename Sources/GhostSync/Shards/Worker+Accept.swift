import CGhostSyncShims
import Glibc

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

// Accepting and admitting connections on this worker's SO_REUSEPORT listeners (TCP, and
// WebSocket when it is on): the limits (maxClients, maxConnectionsPerIP), `onConnect`, and
// backing off when descriptors run out.
extension Worker {
    func acceptConnections(from listener: Listener, transport: ClientTransport) {
        // Bounded per iteration so a connection storm cannot starve established clients.
        for _ in 0..<64 {
            let accepted: (fd: Int32, address: SocketAddress)?
            do {
                accepted = try Syscall.accept(listener.fd)
            } catch {
                if error.errno == EMFILE || error.errno == ENFILE || error.errno == ENOBUFS || error.errno == ENOMEM {
                    pauseAccepting()
                }
                return
            }
            guard let accepted else { return }
            switch transport {
            case .tcp: admit(fd: accepted.fd, address: accepted.address)
            case .webSocket: admitWebSocket(fd: accepted.fd, address: accepted.address)
            }
        }
    }

    /// Counts the connection against `maxClients` and `maxConnectionsPerIP`; a refused one is
    /// closed here.
    private func withinLimits(fd: Int32, address: SocketAddress) -> Bool {
        let count = core.connectionCount.wrappingAdd(1, ordering: .relaxed).newValue
        guard count <= core.configuration.maxClients, core.admitIP(address) else {
            abandonAdmission(fd: fd, address: address, releasingIP: false)
            statistics[.connectionsRefused] += 1
            return false
        }
        return true
    }

    func admit(fd: Int32, address: SocketAddress) {
        guard withinLimits(fd: fd, address: address) else { return }
        let connection = Connection(
            fd: fd, id: UUID(), address: address, maxPayload: maxPayload, now: now, pingInterval: pingInterval)
        guard callingHook({ handler.onConnect(ConnectingClient(record: connection.record)) }) else {
            connection.isClosed = true
            abandonAdmission(fd: fd, address: address, releasingIP: true)
            statistics[.connectionsRefused] += 1
            return
        }
        statistics[.connectionsAccepted] += 1
        ClientSocket.configure(fd)
        guard register(connection) else {
            connection.isClosed = true
            abandonAdmission(fd: fd, address: address, releasingIP: true)
            return
        }
        core.clients.insert(connection.record)
        scheduleTimer(connection)
    }

    /// A WebSocket connection counts against the limits from its accept (so half-done
    /// handshakes cannot exceed them), but becomes a client, with `onConnect` and a place in the
    /// directory, only once its upgrade request passes (`receiveRequestHead`).
    func admitWebSocket(fd: Int32, address: SocketAddress) {
        guard withinLimits(fd: fd, address: address) else { return }
        let connection = Connection(
            fd: fd, id: UUID(), address: address, maxPayload: maxPayload, now: now, pingInterval: pingInterval)
        connection.webSocket = WebSocketSession(
            maxMessageSize: maxPayload, acceptsText: webSocketSettings.echoesMessages, handshakeDeadline: now + handshakeTimeout)
        ClientSocket.configure(fd)
        guard register(connection) else {
            connection.isClosed = true
            abandonAdmission(fd: fd, address: address, releasingIP: true)
            return
        }
        scheduleTimer(connection)
    }

    /// Takes back what `admit` counted for a connection it does not keep, and closes the socket.
    func abandonAdmission(fd: Int32, address: SocketAddress, releasingIP: Bool) {
        if releasingIP { core.releaseIP(address) }
        core.connectionCount.wrappingSubtract(1, ordering: .relaxed)
        Syscall.close(fd)
    }

    /// Out of descriptors: stop polling the listener for a moment instead of spinning on it.
    func pauseAccepting() {
        guard acceptResumesAt == nil else { return }
        epoll.remove(listener.fd)
        if let webSocketListener { epoll.remove(webSocketListener.fd) }
        acceptResumesAt = now + 100
    }

    func resumeAccepting() {
        acceptResumesAt = nil
        try? epoll.add(listener.fd, events: gs_EPOLLIN, token: Self.listenerToken)
        if let webSocketListener {
            try? epoll.add(webSocketListener.fd, events: gs_EPOLLIN, token: Self.webSocketListenerToken)
        }
    }
}
