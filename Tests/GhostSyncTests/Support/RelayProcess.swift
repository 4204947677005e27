import Glibc
@testable import GhostSync
@testable import GhostSyncRelay

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// A running `ghost-sync relay` child process on ephemeral loopback ports.
final class RelayProcess {
    let process: Subprocess
    let relay: String
    let control: String
    let metrics: String
    /// The WebSocket address, or "off".
    let webSocket: String

    init(_ extra: [String] = []) throws {
        process = try Subprocess("ghost-sync", ["relay", "--bind", "127.0.0.1:0", "--control", "127.0.0.1:0", "--metrics", "127.0.0.1:0", "--workers", "2"] + extra)
        let line = try process.readLine()
        let fields = Dictionary(uniqueKeysWithValues: line.split(separator: " ").dropFirst(2).compactMap { field -> (String, String)? in
            let parts = field.split(separator: "=", maxSplits: 1)
            return parts.count == 2 ? (String(parts[0]), String(parts[1])) : nil
        })
        guard line.hasPrefix("ghost-sync ready"), let relay = fields["relay"], let control = fields["control"], let metrics = fields["metrics"] else {
            throw TimedOut(what: "the ready line, got: \(line)")
        }
        self.relay = relay
        self.control = control
        self.metrics = metrics
        self.webSocket = fields["ws"] ?? "missing"
    }

    var relayPort: UInt16 { UInt16(relay.split(separator: ":").last!)! }

    func control(_ lines: String...) throws -> [String] {
        try ControlClient(address: control).request(lines)
    }

    /// One control request, and the response exactly as sent.
    func controlText(_ request: String) throws -> String {
        try ControlClient(address: control).response(to: request)
    }

    /// GET `path` on the metrics endpoint: status and body.
    func get(_ path: String) throws -> (Int, String) {
        let client = try RawClient(port: UInt16(metrics.split(separator: ":").last!)!)
        try client.sendRaw(Array("GET \(path) HTTP/1.1\r\nHost: x\r\n\r\n".utf8))
        let response = try client.readAll()
        let status = Int(response.split(separator: " ").dropFirst().first ?? "") ?? 0
        let body = response.components(separatedBy: "\r\n\r\n").dropFirst().joined(separator: "\r\n\r\n")
        return (status, body)
    }

    /// The value of one sample line (`name{labels} value`), summed over matching lines.
    func metric(_ prefix: String) throws -> Double {
        let (_, body) = try get("/metrics")
        return body.split(separator: "\n").filter { $0.hasPrefix(prefix) }.compactMap { Double($0.split(separator: " ").last!) }.reduce(0, +)
    }
}
