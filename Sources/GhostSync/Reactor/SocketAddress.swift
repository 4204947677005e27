import Glibc

/// An IPv4 or IPv6 address with a port: where the relay listens, and where a client comes from.
public struct SocketAddress: Hashable, Sendable, CustomStringConvertible {
    enum Storage: Hashable, Sendable {
        case v4(host: UInt32, port: UInt16)          // host in network byte order
        case v6(host: [UInt8], port: UInt16, scope: UInt32)
    }

    let storage: Storage

    /// Parses `"127.0.0.1:7777"`, `"0.0.0.0:0"`, `"[::1]:7777"` or `"localhost:7777"`
    /// (a name is resolved once, here, to its first address).
    public init(parsing text: String) throws(AddressError) {
        let host: String
        let portText: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]"),
                  text.index(after: close) < text.endIndex,
                  text[text.index(after: close)] == ":" else { throw AddressError(text, "expected [IPv6]:PORT") }
            host = String(text[text.index(after: text.startIndex)..<close])
            portText = text[text.index(close, offsetBy: 2)...]
        } else {
            guard let colon = text.lastIndex(of: ":") else { throw AddressError(text, "expected HOST:PORT") }
            host = String(text[..<colon])
            portText = text[text.index(after: colon)...]
        }
        guard let port = UInt16(portText) else { throw AddressError(text, "port must be 0...65535") }
        var v4 = in_addr()
        var v6 = in6_addr()
        if inet_pton(AF_INET, host, &v4) == 1 {
            storage = .v4(host: v4.s_addr, port: port)
        } else if inet_pton(AF_INET6, host, &v6) == 1 {
            storage = .v6(host: withUnsafeBytes(of: v6) { Array($0) }, port: port, scope: 0)
        } else if let resolved = Self.resolve(host) {
            self = resolved.withPort(port)
            return
        } else {
            throw AddressError(text, "cannot resolve host '\(host)'")
        }
    }

    package init(storage: sockaddr_storage) {
        var storage = storage
        switch Int32(storage.ss_family) {
        case AF_INET6:
            let address = withUnsafeBytes(of: &storage) { $0.load(as: sockaddr_in6.self) }
            self.storage = .v6(
                host: withUnsafeBytes(of: address.sin6_addr) { Array($0) },
                port: UInt16(bigEndian: address.sin6_port),
                scope: address.sin6_scope_id)
        default:
            let address = withUnsafeBytes(of: &storage) { $0.load(as: sockaddr_in.self) }
            self.storage = .v4(host: address.sin_addr.s_addr, port: UInt16(bigEndian: address.sin_port))
        }
    }

    private init(_ storage: Storage) {
        self.storage = storage
    }

    /// The port number.
    public var port: UInt16 {
        switch storage {
        case .v4(_, let port), .v6(_, let port, _): return port
        }
    }

    /// The same host with another port.
    public func withPort(_ port: UInt16) -> SocketAddress {
        switch storage {
        case .v4(let host, _): return SocketAddress(.v4(host: host, port: port))
        case .v6(let host, _, let scope): return SocketAddress(.v6(host: host, port: port, scope: scope))
        }
    }

    /// The host part as text: `127.0.0.1` or `::1`.
    public var host: String {
        var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN) + 1)
        switch storage {
        case .v4(let host, _):
            var address = in_addr(s_addr: host)
            inet_ntop(AF_INET, &address, &text, socklen_t(text.count))
        case .v6(let host, _, _):
            var address = in6_addr()
            withUnsafeMutableBytes(of: &address) { $0.copyBytes(from: host) }
            inet_ntop(AF_INET6, &address, &text, socklen_t(text.count))
        }
        return String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// True for 127.0.0.0/8 and ::1 (and IPv4-mapped loopback).
    public var isLoopback: Bool {
        switch storage {
        case .v4(let host, _): return UInt32(bigEndian: host) >> 24 == 127
        case .v6(let host, _, _):
            if host == [UInt8](repeating: 0, count: 15) + [1] { return true }
            return host.prefix(12).elementsEqual([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff]) && host[12] == 127
        }
    }

    public var isIPv6: Bool {
        if case .v6 = storage { return true }
        return false
    }

    public var description: String {
        isIPv6 ? "[\(host)]:\(port)" : "\(host):\(port)"
    }

    /// Calls `body` with this address as a `sockaddr` for bind/connect.
    package func withSockAddr<Result>(_ body: (UnsafePointer<sockaddr>, socklen_t) -> Result) -> Result {
        switch storage {
        case .v4(let host, let port):
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = port.bigEndian
            address.sin_addr = in_addr(s_addr: host)
            return withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
        case .v6(let host, let port, let scope):
            var address = sockaddr_in6()
            address.sin6_family = sa_family_t(AF_INET6)
            address.sin6_port = port.bigEndian
            address.sin6_scope_id = scope
            withUnsafeMutableBytes(of: &address.sin6_addr) { $0.copyBytes(from: host) }
            return withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_in6>.size)) }
            }
        }
    }

    package var family: Int32 { isIPv6 ? AF_INET6 : AF_INET }

    private static func resolve(_ host: String) -> SocketAddress? {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var results: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, nil, &hints, &results) == 0, let first = results else { return nil }
        defer { freeaddrinfo(results) }
        var storage = sockaddr_storage()
        withUnsafeMutableBytes(of: &storage) { destination in
            destination.copyMemory(from: UnsafeRawBufferPointer(start: first.pointee.ai_addr, count: Int(first.pointee.ai_addrlen)))
        }
        return SocketAddress(storage: storage)
    }
}

/// An address that could not be parsed or resolved.
public struct AddressError: Error, Equatable, Sendable, CustomStringConvertible {
    public let text: String
    public let reason: String

    init(_ text: String, _ reason: String) {
        self.text = text
        self.reason = reason
    }

    public var description: String { "invalid address '\(text)': \(reason)" }
}
