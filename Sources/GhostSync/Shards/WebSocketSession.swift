/// What a WebSocket connection keeps beside its `Connection` (TCP connections have none): where
/// it is in its life, the request bytes until the upgrade, and the frame decoder after it.
///
/// Thread confinement: like its `Connection`, owned by one worker at a time and moved with it.
final class WebSocketSession {
    enum Phase {
        /// Reading the HTTP request head; not yet a client (no hooks, not in the directory).
        case handshaking
        /// Upgraded: a client like any other.
        case open
        /// A plain HTTP answer is queued (a served file or a refusal); the connection closes
        /// once it is written.
        case responding
    }

    // Touched per read (phase) and per frame (decoder): unchecked for the reason given on
    // `Connection`.
    @exclusivity(unchecked) var phase = Phase.handshaking
    /// The request head read so far (empty once upgraded).
    var requestHead: [UInt8] = []
    @exclusivity(unchecked) var decoder: WebSocketFrameDecoder
    /// Monotonic milliseconds by which the handshake (or the answer to a plain request) must be
    /// done, or the connection is closed.
    let handshakeDeadline: Int64
    /// The Close frame to send when the connection ends, when it is not the one its
    /// `DisconnectReason` implies: the echo of a client's Close, or a codec error's code.
    var closeFrame: (code: UInt16?, reason: String)?
    /// The peer closed the TCP connection without a Close frame: nothing is sent back.
    var peerIsGone = false
    /// The server's Close went out; it is sent once.
    var closeSent = false

    init(maxMessageSize: Int, acceptsText: Bool, handshakeDeadline: Int64) {
        self.decoder = WebSocketFrameDecoder(maxMessageSize: maxMessageSize, acceptsText: acceptsText)
        self.handshakeDeadline = handshakeDeadline
    }

    /// The Close frame's payload for a connection that ends for `reason`; nil when no Close is
    /// sent (the connection broke).
    func closePayload(for reason: DisconnectReason) -> [UInt8]? {
        if peerIsGone { return nil }
        if let closeFrame {
            guard let code = closeFrame.code else { return [] }
            return WebSocketFrame.closePayload(code: code, reason: closeFrame.reason)
        }
        switch reason {
        case .connectionReset: return nil
        case .connectionClosed: return WebSocketFrame.closePayload(code: WebSocketCloseCode.goingAway, reason: "server shutting down")
        case .idleTimeout, .pingTimeout: return WebSocketFrame.closePayload(code: WebSocketCloseCode.goingAway, reason: reason.description)
        case .payloadTooLarge: return WebSocketFrame.closePayload(code: WebSocketCloseCode.messageTooBig, reason: reason.description)
        case .protocol(let text): return WebSocketFrame.closePayload(code: WebSocketCloseCode.protocolError, reason: text)
        case .rateLimited, .kicked: return WebSocketFrame.closePayload(code: WebSocketCloseCode.policyViolation, reason: reason.description)
        }
    }
}
