import CGhostSyncShims
import Glibc

// Outgoing frames: bounded per-client queues, and one gathered write per connection per loop
// iteration.
extension Worker {
    /// Queues a frame for one client, or drops it (and tells `onBackpressure`) when the client's
    /// queue is full. Never waits and never writes: the flush at the end of the iteration does.
    /// Inlined into the fan-out loop; the drop path stays out of line.
    @inline(__always)
    func enqueue(_ frame: SharedFrame, to connection: Connection) {
        if connection.outbox.count >= channelCapacity {
            drop(for: connection)
            return
        }
        statistics[.framesQueued] += 1
        connection.outbox.append(frame)
        queueFlush(connection)
    }

    /// `enqueue` for the fan-out loop: the caller adds the frame's references and the
    /// `framesQueued` count once for all recipients, so the loop does neither per recipient
    /// (see `Outbox.appendTakingReference`). True when queued, false when dropped.
    @inline(__always)
    func enqueueTakingReference(_ frame: SharedFrame, to connection: Connection) -> Bool {
        if connection.outbox.count >= channelCapacity {
            drop(for: connection)
            return false
        }
        connection.outbox.appendTakingReference(frame)
        queueFlush(connection)
        return true
    }

    @inline(never)
    private func drop(for connection: Connection) {
        statistics[.framesDropped] += 1
        callingHook { handler.onBackpressure(clientID: connection.id, roomID: connection.room?.id ?? "") }
    }

    func send(_ message: ServerWire, to connection: Connection) {
        let frame = SharedFrame.encoding(message, pool: framePool)
        enqueue(frame, to: connection)
        frame.release()
    }

    func sendEcho(_ data: UnsafeRawBufferPointer, to connection: Connection) {
        let payloadSize = ServerWire.echoPayloadSize(dataCount: data.count)
        let frame = framePool.frame(count: WireSize.framePrefix + payloadSize)
        var writer = WireWriter(frame.buffer)
        writer.writeFrameLength(payloadSize)
        ServerWire.writeEchoBody(data: data, into: &writer)
        enqueue(frame, to: connection)
        frame.release()
    }

    @inline(__always)
    func queueFlush(_ connection: Connection) {
        if !connection.flushQueued {
            connection.flushQueued = true
            flushList.append(.passUnretained(connection))
        }
    }

    /// Writes out every connection that has output. A close during the flush may queue
    /// PlayerLeft frames for others; they are appended and flushed in the same pass.
    func flushAll() {
        if clusterFlushQueued {
            clusterFlushQueued = false
            flushCluster()
        }
        var next = 0
        while next < flushList.count {
            let entry = flushList[next]
            next += 1
            entry._withUnsafeGuaranteedRef { connection in
                connection.flushQueued = false
                if isOwned(connection) { flush(connection) }
            }
        }
        flushList.removeAll(keepingCapacity: true)
    }

    /// One write of the `count` gathered `vectors`. Many small frames are copied into one run and sent
    /// with `send`: the kernel's cost per iovec (`_copy_from_iter` walking 30-odd 96-byte
    /// pieces per write in S3) is larger than a `memcpy` of the same bytes here. A few pieces,
    /// larger frames, or more bytes than the buffer holds go out gathered, uncopied.
    @inline(__always)
    func writeGathered(to fd: Int32, pieces count: Int, bytes: Int) throws(SystemError) -> Syscall.IOResult {
        guard count >= Self.writeRunMinimumPieces, bytes <= Self.writeRunCapacity, bytes <= count &* Self.writeRunAverageFrameLimit else {
            return try Syscall.writev(fd, vectors, count: count)
        }
        // Invariant: `bytes` is the sum of the vectors' lengths (`gather` computed both), so
        // the copies stay inside the buffer.
        var run = writeRun.baseAddress!
        for index in 0..<count {
            let vector = vectors[index]
            run.copyMemory(from: vector.iov_base, byteCount: vector.iov_len)
            run += vector.iov_len
        }
        return try Syscall.send(fd, UnsafeRawBufferPointer(start: writeRun.baseAddress, count: bytes))
    }

    /// The most a flush copies into `writeRun` (and its size).
    static let writeRunCapacity = 64 * 1024
    /// The average frame size up to which a flush copies instead of gathering.
    static let writeRunAverageFrameLimit = 1024
    /// Fewer pieces than this go out gathered: there is little for the kernel to walk, and
    /// copying them measured no better (S1h and S2h A/B, about 2 frames per write: 0.97).
    static let writeRunMinimumPieces = 4

    /// As many bytes as the socket takes, IOV_MAX frames per writev, in the connection's wire
    /// format (`Outbox.gatherWebSocket` for a WebSocket client). Leftovers wait for EPOLLOUT.
    func flush(_ connection: Connection) {
        assertOwner(of: connection)
        let isWebSocket = connection.isWebSocket
        while !connection.outbox.isEmpty {
            let gathered: (vectors: Int, bytes: Int, frames: Int)
            if isWebSocket {
                gathered = connection.outbox.gatherWebSocket(into: vectors, headers: webSocketHeaders, limit: Int(gs_IOV_MAX))
            } else {
                let tcp = connection.outbox.gather(into: vectors, limit: Int(gs_IOV_MAX))
                gathered = (tcp.vectors, tcp.bytes, tcp.vectors)
            }
            let result: Syscall.IOResult
            do {
                result = try writeGathered(to: connection.fd, pieces: gathered.vectors, bytes: gathered.bytes)
            } catch {
                close(connection, reason: .connectionReset)
                return
            }
            statistics[.writeCalls] += 1
            guard case .transferred(let written) = result else { break }
            statistics[.bytesWritten] += written
            if written == gathered.bytes {
                connection.outbox.consumeWhole(frames: gathered.frames)
            } else if isWebSocket {
                connection.outbox.consumeWebSocket(written)
            } else {
                connection.outbox.consume(written)
            }
            if written < gathered.bytes { break }  // socket buffer full
        }
        // A WebSocket port's answer to a plain request: the connection ends once it is out.
        if isWebSocket, connection.outbox.isEmpty, connection.webSocket?.phase == .responding {
            close(connection, reason: .connectionClosed)
            return
        }
        // EPOLLOUT only while output is left over.
        let wantsWritable = !connection.outbox.isEmpty
        if wantsWritable != connection.wantsWritable {
            connection.wantsWritable = wantsWritable
            try? epoll.modify(
                connection.fd, events: Self.readEvents | (wantsWritable ? gs_EPOLLOUT : 0),
                token: UInt64(connection.slot))
        }
        // Published for `ServerHandle` queries only when it changed (nearly always 0 → 0), so
        // a flush does not write a line other threads read.
        let queued = connection.outbox.count
        if connection.record.queueLength.load(ordering: .relaxed) != queued {
            connection.record.queueLength.store(queued, ordering: .relaxed)
        }
    }
}
