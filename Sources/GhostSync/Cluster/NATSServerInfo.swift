/// The fields of a server's `INFO {json}` the relay uses. Unknown fields are ignored; all but
/// `serverID` and `maxPayload` are optional, since servers add and drop fields across versions.
///
/// The server sends INFO first on every connection and may send it again at any time: when
/// the cluster's topology changes (new `connectURLs`) or when it enters lame duck mode
/// (`lameDuckMode`, before it shuts down: reconnect elsewhere).
package struct NATSServerInfo: Decodable, Sendable, Equatable {
    package var serverID: String
    package var serverName: String?
    package var version: String?
    /// Protocol level; 1 means the server may send INFO updates and supports echo control.
    package var proto: Int?
    package var host: String?
    package var port: Int?
    /// Whether the server accepts HPUB and may send HMSG.
    package var headers: Bool?
    /// The largest payload (headers included) the server accepts, and so sends: the parser's
    /// payload cap.
    package var maxPayload: Int
    package var jetStream: Bool?
    /// The ID the server gave this connection (in its logs as `cid:N`).
    package var clientID: UInt64?
    package var clientIP: String?
    /// The cluster's name, when the server is part of one.
    package var cluster: String?
    /// Client URLs of the other servers of the cluster (`host:port`), for reconnecting.
    package var connectURLs: [String]?
    /// Lame duck mode: the server is about to shut down.
    package var lameDuckMode: Bool?
    package var authRequired: Bool?
    package var tlsRequired: Bool?
    /// The JetStream domain, when one is set.
    package var domain: String?

    enum CodingKeys: String, CodingKey {
        case serverID = "server_id"
        case serverName = "server_name"
        case version, proto, host, port, headers
        case maxPayload = "max_payload"
        case jetStream = "jetstream"
        case clientID = "client_id"
        case clientIP = "client_ip"
        case cluster
        case connectURLs = "connect_urls"
        case lameDuckMode = "ldm"
        case authRequired = "auth_required"
        case tlsRequired = "tls_required"
        case domain
    }

    package init(serverID: String, maxPayload: Int) {
        self.serverID = serverID
        self.maxPayload = maxPayload
    }
}
