/// What the consumer of a frame wants the decoder to do next.
package enum FrameAction {
    /// Go on with the next frame.
    case proceed
    /// Stop here and keep every byte not yet handed out, to be resumed later (on another worker
    /// after a cross-shard handoff: the bytes travel with the connection).
    case pause
    /// Stop and discard: the connection is being closed.
    case stop
}

/// Splits a TCP byte stream into frame payloads, whatever the split of the reads: many frames per
/// read, a frame over many reads, a prefix split across reads.
///
/// Whole frames are handed out straight from the caller's read buffer with no copy; only the
/// bytes of an incomplete frame are kept, in `pending`, which is empty (and holds no memory) at
/// a frame boundary. The length prefix is checked against `maxPayload` as soon as its 4 bytes
/// are in, before any byte of the body is stored.
package struct FrameDecoder: Sendable {
    package let maxPayload: Int
    /// Bytes of an incomplete frame (prefix included), or paused input not yet handed out.
    private(set) var pending: [UInt8] = []

    package init(maxPayload: Int) {
        self.maxPayload = maxPayload
    }

    /// True when bytes are waiting (an incomplete frame, or paused input).
    package var hasPendingBytes: Bool { !pending.isEmpty }

    /// Feeds newly read bytes; calls `handle` with each complete payload, in order.
    package mutating func feed(
        _ input: UnsafeRawBufferPointer,
        _ handle: (UnsafeRawBufferPointer) -> FrameAction
    ) throws(WireError) -> FrameAction {
        var input = input[...]
        if !pending.isEmpty {
            // Complete the frame begun in an earlier read, copying only what it still lacks.
            if pending.count < WireSize.framePrefix {
                let take = min(WireSize.framePrefix - pending.count, input.count)
                pending.append(contentsOf: input.prefix(take))
                input = input.dropFirst(take)
                if pending.count < WireSize.framePrefix { return .proceed }
                // Check the length now, before storing any of the body.
                _ = try checkedLength(pending.withUnsafeBytes { Self.prefix(at: 0, in: $0) })
            }
            let length = try checkedLength(pending.withUnsafeBytes { Self.prefix(at: 0, in: $0) })
            let missing = WireSize.framePrefix + length - pending.count
            if missing > 0 {
                let take = min(missing, input.count)
                pending.append(contentsOf: input.prefix(take))
                input = input.dropFirst(take)
                if take < missing { return .proceed }
            }
            let frame = pending
            pending = []
            let action = frame.withUnsafeBytes { raw in
                handle(UnsafeRawBufferPointer(rebasing: raw[WireSize.framePrefix...]))
            }
            if action != .proceed { return keep(UnsafeRawBufferPointer(rebasing: input), after: action) }
        }
        let bytes = UnsafeRawBufferPointer(rebasing: input)
        var offset = 0
        while bytes.count - offset >= WireSize.framePrefix {
            let length = try checkedLength(Self.prefix(at: offset, in: bytes))
            let end = offset + WireSize.framePrefix + length
            if end > bytes.count { break }
            let action = handle(UnsafeRawBufferPointer(rebasing: bytes[(offset + WireSize.framePrefix)..<end]))
            offset = end
            if action != .proceed { return keep(UnsafeRawBufferPointer(rebasing: bytes[offset...]), after: action) }
        }
        // Only when bytes remain: appending an empty slice still allocates array storage.
        if offset < bytes.count { pending.append(contentsOf: bytes[offset...]) }
        return .proceed
    }

    /// Hands out the frames that were kept by a `.pause` (and stores any incomplete tail again).
    package mutating func resume(_ handle: (UnsafeRawBufferPointer) -> FrameAction) throws(WireError) -> FrameAction {
        let kept = pending
        pending = []
        var decoder = self
        let result = kept.withUnsafeBytes { raw in
            Result { () throws(WireError) -> FrameAction in try decoder.feed(raw, handle) }
        }
        self = decoder
        return try result.get()
    }

    /// Drops every kept byte (the connection is closing).
    package mutating func reset() {
        pending = []
    }

    private mutating func keep(_ rest: UnsafeRawBufferPointer, after action: FrameAction) -> FrameAction {
        if action == .pause {
            if !rest.isEmpty { pending.append(contentsOf: rest) }
        } else {
            pending = []
        }
        return action
    }

    private func checkedLength(_ length: UInt32) throws(WireError) -> Int {
        if UInt64(length) > UInt64(maxPayload) {
            throw .payloadTooLarge(length: Int(length), limit: maxPayload)
        }
        return Int(length)
    }

    private static func prefix(at offset: Int, in bytes: UnsafeRawBufferPointer) -> UInt32 {
        UInt32(bigEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
    }
}
