@testable import GhostSync

/// A header as a test compares it.
struct NATSHeader: Equatable, CustomStringConvertible {
    var name: String
    var value: String
    init(_ name: String, _ value: String) {
        self.name = name
        self.value = value
    }
    var description: String { "\(name): \(value)" }
}

/// An owned copy of a delivered message, for tests (a `NATSMessage` lives only in the callback).
struct NATSReceivedMessage: Equatable, CustomStringConvertible {
    var subject: String
    var sid: UInt64
    var replyTo: String?
    var status: Int?
    var statusDescription: String?
    var headers: [NATSHeader]?
    var payload: [UInt8]

    init(subject: String, sid: UInt64, replyTo: String? = nil, status: Int? = nil, statusDescription: String? = nil, headers: [NATSHeader]? = nil, payload: [UInt8]) {
        self.subject = subject
        self.sid = sid
        self.replyTo = replyTo
        self.status = status
        self.statusDescription = statusDescription
        self.headers = headers
        self.payload = payload
    }

    init(_ message: NATSMessage) {
        subject = message.subject
        sid = message.sid
        replyTo = message.replyTo
        status = message.status
        statusDescription = message.statusDescription
        headers = message.headerBytes == nil ? nil : message.headers.map { NATSHeader($0.name, $0.value) }
        payload = Array(message.payload)
    }

    var description: String {
        "\(headers == nil ? "MSG" : "HMSG") \(subject) sid=\(sid) reply=\(replyTo ?? "-") status=\(status.map(String.init) ?? "-") headers=\(headers ?? []) payload=\(payload.count) bytes"
    }
}

/// An owned copy of any server operation.
enum NATSReceived: Equatable {
    case info(NATSServerInfo)
    case message(NATSReceivedMessage)
    case ping, pong, ok
    case error(String)

    init(_ message: NATSServerMessage) {
        switch message {
        case .info(let info): self = .info(info)
        case .message(let message): self = .message(NATSReceivedMessage(message))
        case .ping: self = .ping
        case .pong: self = .pong
        case .ok: self = .ok
        case .error(let text): self = .error(text)
        }
    }
}
