import Crypto

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// What the WebSocket port answers a complete request head with.
package enum HandshakeDecision: Equatable {
    /// 101 Switching Protocols: from here on the bytes are WebSocket frames.
    case upgrade(response: [UInt8], subprotocol: String?, origin: String?)
    /// A plain HTTP answer (a served file, or an error status), after which the server closes.
    /// `refusal` says why an upgrade was refused (nil for a served file).
    case respond(response: [UInt8], status: Int, refusal: String?)
}

/// The server's opening handshake (RFC 6455 §4.2): checks a request and builds the answer.
package enum WebSocketHandshake {
    /// The GUID every accept key is derived with (§1.3).
    static let keyGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

    /// `base64(SHA-1(key + GUID))`.
    package static func acceptKey(for key: String) -> String {
        let digest = Insecure.SHA1.hash(data: Array((key + keyGUID).utf8))
        return Data(digest).base64EncodedString()
    }

    package static func decide(_ head: HTTPRequestHead, configuration: WebSocketConfiguration) -> HandshakeDecision {
        guard head.method == "GET" else {
            return refuse(405, "Method Not Allowed", "only GET is served here", extraHeaders: ["Allow: GET"])
        }
        let wantsWebSocket = head.tokens(of: "upgrade").contains("websocket")
        guard wantsWebSocket else { return serve(head.path, from: configuration.resources) }
        guard head.majorVersion > 1 || (head.majorVersion == 1 && head.minorVersion >= 1) else {
            return refuse(400, "Bad Request", "a WebSocket upgrade needs HTTP/1.1")
        }
        guard head.count(of: "host") == 1, let host = head.value(of: "host"), !host.isEmpty else {
            return refuse(400, "Bad Request", "missing or repeated Host")
        }
        guard head.tokens(of: "connection").contains("upgrade") else {
            return refuse(400, "Bad Request", "Connection does not list Upgrade")
        }
        guard let version = head.value(of: "sec-websocket-version") else {
            return refuse(400, "Bad Request", "missing Sec-WebSocket-Version")
        }
        guard version == "13" else {
            return refuse(426, "Upgrade Required", "unsupported WebSocket version \(version); this server speaks 13",
                          extraHeaders: ["Sec-WebSocket-Version: 13"])
        }
        guard head.count(of: "sec-websocket-key") == 1, let key = head.value(of: "sec-websocket-key"),
              let decoded = Data(base64Encoded: key), decoded.count == 16
        else {
            return refuse(400, "Bad Request", "Sec-WebSocket-Key must be the base64 of 16 bytes")
        }
        let origin = head.value(of: "origin")
        if let allowed = configuration.allowedOrigins, !allowed.contains(origin ?? "") {
            return refuse(403, "Forbidden", "origin \(origin ?? "(none)") is not allowed")
        }
        // A client that offers subprotocols fails the connection unless one is selected
        // (browsers do), so one that offers only others is refused here, with a reason.
        let offered = head.tokens(of: "sec-websocket-protocol")
        var selected: String?
        if !offered.isEmpty {
            guard offered.contains(WebSocketConfiguration.subprotocol) else {
                return refuse(400, "Bad Request", "unsupported subprotocol; offer \(WebSocketConfiguration.subprotocol)")
            }
            selected = WebSocketConfiguration.subprotocol
        }
        // No Sec-WebSocket-Extensions in the answer: permessage-deflate and every other
        // extension are declined by omission (§9.1), so the RSV bits stay illegal.
        var lines = [
            "HTTP/1.1 101 Switching Protocols",
            "Upgrade: websocket",
            "Connection: Upgrade",
            "Sec-WebSocket-Accept: \(acceptKey(for: key))",
        ]
        if let selected { lines.append("Sec-WebSocket-Protocol: \(selected)") }
        return .upgrade(response: Array((lines.joined(separator: "\r\n") + "\r\n\r\n").utf8), subprotocol: selected, origin: origin)
    }

    /// The answer to a head that is not even HTTP.
    package static let malformed = refuse(400, "Bad Request", "malformed HTTP request")

    /// The answer to a head longer than `maxRequestHeadBytes`.
    package static let headTooLarge = refuse(431, "Request Header Fields Too Large", "request head too large")

    private static func serve(_ path: String, from resources: [String: HTTPResource]) -> HandshakeDecision {
        guard let resource = resources[path] else {
            return .respond(response: response(404, "Not Found", body: Array("not found\n".utf8), contentType: "text/plain; charset=utf-8"),
                            status: 404, refusal: nil)
        }
        return .respond(response: response(200, "OK", body: resource.body, contentType: resource.contentType,
                                           extraHeaders: ["Cache-Control: no-cache", "X-Content-Type-Options: nosniff"]),
                        status: 200, refusal: nil)
    }

    static func refuse(_ status: Int, _ phrase: String, _ reason: String, extraHeaders: [String] = []) -> HandshakeDecision {
        .respond(response: response(status, phrase, body: Array((reason + "\n").utf8), contentType: "text/plain; charset=utf-8", extraHeaders: extraHeaders),
                 status: status, refusal: reason)
    }

    static func response(_ status: Int, _ phrase: String, body: [UInt8], contentType: String, extraHeaders: [String] = []) -> [UInt8] {
        let head = (["HTTP/1.1 \(status) \(phrase)", "Content-Type: \(contentType)", "Content-Length: \(body.count)", "Connection: close"]
            + extraHeaders).joined(separator: "\r\n") + "\r\n\r\n"
        return Array(head.utf8) + body
    }
}
