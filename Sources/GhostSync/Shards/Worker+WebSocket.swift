import CGhostSyncShims
import Glibc

// WebSocket connections (RFC 6455) on the same loop as TCP ones: the opening handshake (or a
// plain HTTP GET answered with a served file), then frames decoded into the same relay requests.
// Once upgraded, a WebSocket client differs from a TCP one only here and in its outbox's wire
// format (`Outbox.gatherWebSocket`).
extension Worker {
    /// Bytes read from a WebSocket connection, in the worker's read buffer (unmasked in place).
    func receiveWebSocketBytes(_ bytes: UnsafeMutableRawBufferPointer, from connection: Connection, session: WebSocketSession) {
        switch session.phase {
        case .handshaking:
            receiveRequestHead(bytes, from: connection, session: session)
        case .open:
            decodeWebSocket(connection, session: session) { decoder, handle throws(WebSocketError) in try decoder.feed(bytes, handle) }
        case .responding:
            break  // a plain HTTP request's body or pipelined requests: one answer per connection
        }
    }

    private func receiveRequestHead(_ bytes: UnsafeMutableRawBufferPointer, from connection: Connection, session: WebSocketSession) {
        let scannedBefore = session.requestHead.count
        session.requestHead.append(contentsOf: UnsafeRawBufferPointer(bytes))
        let end = session.requestHead.withUnsafeBytes { HTTPRequestHead.endOfHead(in: $0, searchFrom: scannedBefore) }
        guard let end, end <= webSocketSettings.maxRequestHeadBytes else {
            // Decided on the bytes held, never more than a read past the cap.
            if session.requestHead.count > webSocketSettings.maxRequestHeadBytes || end != nil {
                answer(WebSocketHandshake.headTooLarge, to: connection, session: session)
            }
            return
        }
        let head = session.requestHead.withUnsafeBytes { HTTPRequestHead(UnsafeRawBufferPointer(rebasing: $0[..<end])) }
        guard let head else {
            answer(WebSocketHandshake.malformed, to: connection, session: session)
            return
        }
        let decision = WebSocketHandshake.decide(head, configuration: webSocketSettings)
        guard case .upgrade(let response, _, _) = decision else {
            answer(decision, to: connection, session: session)
            return
        }
        // Now it is a client: the same admission hook as a TCP connection, then the directory.
        guard callingHook({ handler.onConnect(ConnectingClient(record: connection.record, transport: .webSocket)) }) else {
            statistics[.connectionsRefused] += 1
            answer(WebSocketHandshake.refuse(403, "Forbidden", "connection refused"), to: connection, session: session)
            return
        }
        statistics[.connectionsAccepted] += 1
        statistics[.webSocketUpgrades] += 1
        core.clients.insert(connection.record)
        var leftover = Array(session.requestHead[end...])
        session.requestHead = []
        session.phase = .open
        connection.lastFrameAt = now
        connection.nextPingAt = now + pingInterval
        scheduleTimer(connection)
        sendVerbatim(response, to: connection)
        // Frames the client sent right behind its request.
        if !leftover.isEmpty {
            leftover.withUnsafeMutableBytes { rest in
                decodeWebSocket(connection, session: session) { decoder, handle throws(WebSocketError) in try decoder.feed(rest, handle) }
            }
        }
    }

    /// A plain HTTP answer (a file or a refusal); the connection closes once it is written.
    private func answer(_ decision: HandshakeDecision, to connection: Connection, session: WebSocketSession) {
        guard case .respond(let response, let status, let refusal) = decision else { return }
        statistics[refusal == nil ? .httpResponses : .webSocketHandshakesRefused] += 1
        _ = status
        session.phase = .responding
        session.requestHead = []
        sendVerbatim(response, to: connection)
    }

    /// Runs the frame decoder and acts on how it stopped, like `decode` does for TCP.
    func decodeWebSocket(
        _ connection: Connection, session: WebSocketSession,
        _ run: (inout WebSocketFrameDecoder, (WebSocketEvent) -> FrameAction) throws(WebSocketError) -> FrameAction
    ) {
        var closeReason: DisconnectReason?
        // The client's Close, if one came: kept here rather than in the session so that the
        // per-frame closure captures no more than TCP's does (each capture is a retain and a
        // release per frame).
        var clientClose: UInt16??
        let action: FrameAction
        do {
            action = try run(&session.decoder) { event in
                self.handleWebSocketEvent(event, from: connection, closeReason: &closeReason, clientClose: &clientClose)
            }
        } catch {
            session.closeFrame = (error.code, error.reason)
            close(connection, reason: error.code == WebSocketCloseCode.messageTooBig ? .payloadTooLarge : .protocol(error.reason))
            return
        }
        if let clientClose { session.closeFrame = (clientClose, "") }
        switch action {
        case .proceed: break
        case .stop: close(connection, reason: closeReason ?? .connectionClosed)
        case .pause: handOff(connection)
        }
    }

    private func handleWebSocketEvent(
        _ event: WebSocketEvent, from connection: Connection, closeReason: inout DisconnectReason?, clientClose: inout UInt16??
    ) -> FrameAction {
        switch event {
        case .message(let opcode, let payload):
            if webSocketSettings.echoesMessages {
                connection.lastFrameAt = now
                sendWebSocketFrame(opcode: opcode, payload: payload, to: connection)
                return .proceed
            }
            return handleFrame(payload, from: connection, closeReason: &closeReason)
        case .ping(let payload):
            connection.lastFrameAt = now
            // A client pinging faster than it reads gets Pongs only while its queue has room
            // (RFC 6455 §5.5.3 lets a server answer only the latest Ping).
            if connection.outbox.count < channelCapacity {
                statistics[.webSocketPingsAnswered] += 1
                sendWebSocketFrame(opcode: .pong, payload: payload, to: connection)
            }
            return .proceed
        case .pong:
            connection.lastFrameAt = now
            return .proceed
        case .close(let code, _):
            // Answered with the same code (or an empty Close for an empty one); then the
            // server closes the TCP connection first (§7.1.1).
            clientClose = .some(code)
            closeReason = .connectionClosed
            return .stop
        }
    }

    /// Queues bytes already in the connection's wire format.
    func sendVerbatim(_ bytes: [UInt8], to connection: Connection) {
        let frame = bytes.withUnsafeBytes { SharedFrame.verbatim($0, pool: framePool) }
        enqueueUnbounded(frame, to: connection)
        frame.release()
    }

    /// Queues one unmasked WebSocket frame (an echo, or a Pong), under the same bound as any
    /// frame (`enqueue`).
    private func sendWebSocketFrame(opcode: WebSocketOpcode, payload: UnsafeRawBufferPointer, to connection: Connection) {
        let headerSize = WebSocketFrame.serverHeaderSize(payloadLength: payload.count)
        let frame = framePool.frame(count: headerSize + payload.count)
        frame.isVerbatim = true
        WebSocketFrame.writeServerHeader(opcode: opcode, payloadLength: payload.count, to: frame.bytes)
        if let source = payload.baseAddress, !payload.isEmpty {
            (frame.bytes + headerSize).copyMemory(from: source, byteCount: payload.count)
        }
        enqueue(frame, to: connection)
        frame.release()
    }

    /// The handshake's answer is never dropped: it is the first thing queued.
    private func enqueueUnbounded(_ frame: SharedFrame, to connection: Connection) {
        statistics[.framesQueued] += 1
        connection.outbox.append(frame)
        queueFlush(connection)
    }

    /// Last words on a WebSocket connection that is closing: what is queued, if the socket
    /// takes it at once, then the Close frame (only behind whole frames). Best effort, never
    /// waits: a client that does not read gets no Close.
    func writeFinalWebSocketBytes(_ connection: Connection, session: WebSocketSession, reason: DisconnectReason) {
        while !connection.outbox.isEmpty {
            let gathered = connection.outbox.gatherWebSocket(into: vectors, headers: webSocketHeaders, limit: Int(gs_IOV_MAX))
            guard case .transferred(let written)? = try? Syscall.writev(connection.fd, vectors, count: gathered.vectors) else { return }
            connection.outbox.consumeWebSocket(written)
            if written < gathered.bytes { return }
        }
        guard session.phase == .open, !session.closeSent, let payload = session.closePayload(for: reason) else { return }
        session.closeSent = true
        let frame = WebSocketFrame.serverFrame(opcode: .close, payload: payload)
        _ = frame.withUnsafeBytes { try? Syscall.send(connection.fd, $0) }
    }
}
