/// The WebSocket transport (`ShardedServerBuilder.webSocket(bind:)`): a second SO_REUSEPORT
/// listener on every worker whose connections, once upgraded, are room members like TCP ones.
/// The same port answers plain HTTP GET with `resources` (the relay serves its demo page and
/// JavaScript client that way).
public struct WebSocketConfiguration: Sendable {
    /// Listen address, `HOST:PORT` (port 0 picks a free port; see `ServerHandle.webSocketAddress`).
    public var bindAddress: String
    /// `Origin` values allowed to open a WebSocket, compared exactly (scheme, host and port, as
    /// browsers send them: `https://game.example.com`); nil (the default) allows any origin and
    /// requests without one. A refused origin gets 403.
    public var allowedOrigins: [String]?
    /// Longest a connection may take from accept to a complete upgrade request; slower ones
    /// (slowloris, port scanners) are closed. Default 5 s.
    public var handshakeTimeout: Duration = .seconds(5)
    /// Largest request head (request line and headers) accepted; past it the answer is 431.
    public var maxRequestHeadBytes = 8 * 1024
    /// What a plain HTTP GET (no `Upgrade`) is answered with, by path (`/`, `/ghost-sync.js`);
    /// any other path gets 404. Empty by default.
    public var resources: [String: HTTPResource] = [:]
    /// The subprotocol the server selects when a client offers it (RFC 6455 §1.9).
    public static let subprotocol = "ghost-sync.v1"
    /// Diagnostic echo endpoint (`ghost-sync ws-echo`): every message, text or binary, is sent
    /// back verbatim instead of being read as a relay request, so conformance suites can test
    /// the codec. Never set on a relay.
    package var echoesMessages = false

    public init(bindAddress: String) {
        self.bindAddress = bindAddress
    }

    func validated() throws(ServerError) -> WebSocketConfiguration {
        if handshakeTimeout <= .zero || handshakeTimeout > .seconds(60) {
            throw .invalidConfiguration("webSocket.handshakeTimeout must be 0...60 s")
        }
        if maxRequestHeadBytes < 512 || maxRequestHeadBytes > 1 << 20 {
            throw .invalidConfiguration("webSocket.maxRequestHeadBytes must be 512...1048576")
        }
        for path in resources.keys where !path.hasPrefix("/") {
            throw .invalidConfiguration("webSocket.resources paths must start with /: \(path)")
        }
        return self
    }
}

/// A file the WebSocket port serves over plain HTTP.
public struct HTTPResource: Sendable {
    public var contentType: String
    public var body: [UInt8]

    public init(contentType: String, body: [UInt8]) {
        self.contentType = contentType
        self.body = body
    }
}

/// Which transport a client connected over (`ConnectingClient.transport`, and the relay's
/// metrics label).
public enum ClientTransport: String, Sendable, Equatable, CaseIterable {
    /// The ghost-sync TCP framing (4-byte length prefix).
    case tcp
    /// RFC 6455 WebSocket, one binary message per ghost-sync payload.
    case webSocket = "websocket"
}
