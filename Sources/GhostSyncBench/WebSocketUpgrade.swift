import GhostSync

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The client side of one WebSocket opening handshake (RFC 6455 §4.1), as a browser makes it:
/// the upgrade request offering `ghost-sync.v1`, then the checks a browser makes on the answer
/// before it reports the socket open. Runs on the connection's `BenchThread`, once per
/// connection, before it joins; never on the measured path.
struct WebSocketUpgrade {
    /// `Sec-WebSocket-Key`: the base64 of 16 random bytes, fresh per connection.
    let key: String
    /// `Sec-WebSocket-Accept` the relay must answer with.
    let expectedAccept: String
    /// Longest answer head read before giving up (the relay's is about 150 bytes).
    static let maxHeadBytes = 16 * 1024

    init(nonce: [UInt8]) {
        precondition(nonce.count == 16, "a Sec-WebSocket-Key is 16 bytes")
        key = Data(nonce).base64EncodedString()
        expectedAccept = WebSocketHandshake.acceptKey(for: key)
    }

    /// With a random key (a browser's is random too).
    init() {
        var generator = SystemRandomNumberGenerator()
        self.init(nonce: (0..<16).map { _ in UInt8.random(in: 0...255, using: &generator) })
    }

    /// The request, for `host` (the `HOST:PORT` connected to).
    func request(host: String) -> [UInt8] {
        let lines = [
            "GET / HTTP/1.1",
            "Host: \(host)",
            "Upgrade: websocket",
            "Connection: Upgrade",
            "Sec-WebSocket-Key: \(key)",
            "Sec-WebSocket-Version: 13",
            "Sec-WebSocket-Protocol: \(WebSocketConfiguration.subprotocol)",
        ]
        return Array((lines.joined(separator: "\r\n") + "\r\n\r\n").utf8)
    }

    enum Outcome: Equatable {
        /// The answer head is not complete yet.
        case incomplete
        /// 101 with every check passed; the head is `headBytes` long (frames may follow it).
        case upgraded(headBytes: Int)
        /// Anything else: what a browser would fail the connection for.
        case failed(String)
    }

    /// Checks the answer at the front of `input`: status 101, `Upgrade: websocket`,
    /// `Connection: Upgrade`, the accept key, the subprotocol offered and no extension (none
    /// was offered).
    func check(_ input: UnsafeRawBufferPointer) -> Outcome {
        guard let end = HTTPRequestHead.endOfHead(in: input) else {
            return input.count > Self.maxHeadBytes ? .failed("no complete HTTP answer in \(input.count) bytes") : .incomplete
        }
        let text = String(decoding: input[..<(end - 4)], as: UTF8.self)
        var lines = text.split(separator: "\r\n" as Character, omittingEmptySubsequences: false)
        let statusLine = lines.isEmpty ? "" : String(lines.removeFirst())
        var fields: [String: String] = [:]
        for line in lines {
            guard let colon = line.firstIndex(of: ":") else { return .failed("malformed header line in the answer: \(line)") }
            let name = line[..<colon].lowercased()
            let value = line[line.index(after: colon)...].trimmed
            // Repeated fields: joined, as HTTP allows for lists.
            fields[name] = fields[name].map { "\($0), \(value)" } ?? value
        }
        let status = statusLine.split(separator: " ", maxSplits: 2)
        guard status.count >= 2, status[0].hasPrefix("HTTP/1.") else { return .failed("not an HTTP answer: \(statusLine)") }
        guard status[1] == "101" else {
            // The relay explains a refusal in a short text body.
            let body = String(decoding: input[end...].prefix(200), as: UTF8.self).trimmed.split(separator: "\n").first.map(String.init)
            return .failed("refused: \(statusLine)" + (body.map { " (\($0))" } ?? ""))
        }
        func tokens(_ name: String) -> [String] {
            (fields[name] ?? "").split(separator: ",").map { $0.trimmed.lowercased() }
        }
        guard tokens("upgrade").contains("websocket") else { return .failed("101 without Upgrade: websocket") }
        guard tokens("connection").contains("upgrade") else { return .failed("101 without Connection: Upgrade") }
        guard fields["sec-websocket-accept"] == expectedAccept else {
            return .failed("wrong Sec-WebSocket-Accept \(fields["sec-websocket-accept"] ?? "(none)"), expected \(expectedAccept)")
        }
        guard fields["sec-websocket-protocol"] == WebSocketConfiguration.subprotocol else {
            return .failed("subprotocol \(fields["sec-websocket-protocol"] ?? "(none)") selected, \(WebSocketConfiguration.subprotocol) offered")
        }
        if let extensions = fields["sec-websocket-extensions"] { return .failed("extension \(extensions) accepted, none offered") }
        return .upgraded(headBytes: end)
    }
}

private extension StringProtocol {
    /// Without leading and trailing spaces and tabs (HTTP's optional whitespace).
    var trimmed: String {
        let isSpace: (Character) -> Bool = { $0 == " " || $0 == "\t" }
        guard let start = firstIndex(where: { !isSpace($0) }), let end = lastIndex(where: { !isSpace($0) }) else { return "" }
        return String(self[start...end])
    }
}
