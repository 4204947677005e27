import Glibc

// Reading and decoding: one read per readiness event into the worker's scratch buffer; every
// whole frame in it is handled straight from that buffer.
extension Worker {
    func read(_ connection: Connection) {
        assertOwner(of: connection)
        let result: Syscall.IOResult
        do {
            result = try Syscall.read(connection.fd, into: readBuffer)
        } catch {
            close(connection, reason: .connectionReset)
            return
        }
        switch result {
        case .wouldBlock:
            return
        case .endOfFile:
            connection.webSocket?.peerIsGone = true
            close(connection, reason: .connectionClosed)
        case .transferred(let count):
            statistics[.readCalls] += 1
            statistics[.bytesRead] += count
            if let session = connection.webSocket {
                receiveWebSocketBytes(UnsafeMutableRawBufferPointer(rebasing: readBuffer[0..<count]), from: connection, session: session)
                return
            }
            let bytes = UnsafeRawBufferPointer(rebasing: readBuffer[0..<count])
            decode(connection) { decoder, handle throws(WireError) in try decoder.feed(bytes, handle) }
        }
    }

    /// Runs the decoder and acts on how it stopped: carry on, close (with the reason a frame
    /// gave), or hand the connection to the worker that owns the room it asked to join.
    /// Frame handlers never close or move the connection themselves, so the decoder is never
    /// touched while it runs.
    func decode(
        _ connection: Connection,
        _ run: (inout FrameDecoder, (UnsafeRawBufferPointer) -> FrameAction) throws(WireError) -> FrameAction
    ) {
        var closeReason: DisconnectReason?
        let action: FrameAction
        do {
            action = try run(&connection.decoder) { payload in
                self.handleFrame(payload, from: connection, closeReason: &closeReason)
            }
        } catch {
            if case .payloadTooLarge = error {
                close(connection, reason: .payloadTooLarge)
            } else {
                close(connection, reason: .protocol(error.description))
            }
            return
        }
        switch action {
        case .proceed: break
        case .stop: close(connection, reason: closeReason ?? .connectionClosed)
        case .pause: handOff(connection)
        }
    }

    /// One complete frame from a client.
    func handleFrame(_ payload: UnsafeRawBufferPointer, from connection: Connection, closeReason: inout DisconnectReason?) -> FrameAction {
        // Any complete frame, Pong included, counts as activity.
        connection.lastFrameAt = now
        statistics[.framesReceived] += 1
        if let limit = maxFramesPerSecond {
            if now - connection.rateWindowStart >= 1000 {
                connection.rateWindowStart = now
                connection.framesInRateWindow = 0
            }
            connection.framesInRateWindow += 1
            if connection.framesInRateWindow > limit {
                closeReason = .rateLimited
                return .stop
            }
        }
        let request: ClientRequest
        do {
            request = try ClientRequest(payload: payload)
        } catch {
            closeReason = .protocol(error.description)
            return .stop
        }
        switch request {
        case .broadcast(let data):
            relay(data, from: connection)
        case .pong:
            connection.pingOutstanding = false
        case .ping:
            enqueue(pongFrame, to: connection)
        case .echoTest(let data):
            sendEcho(data, to: connection)
        case .leaveRoom:
            leaveRoom(connection)
        case .joinRoom(let roomID):
            return requestJoin(connection, roomID: roomID)
        }
        return .proceed
    }
}
