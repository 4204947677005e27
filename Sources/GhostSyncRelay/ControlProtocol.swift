import GhostSync

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The relay's control protocol, answering like the original daemon's, byte for byte: each
/// request and each response is a frame of a 4-byte big-endian length plus UTF-8 text. A
/// request's first line is the command (case-insensitive), the next lines its arguments
/// (trimmed); a response is `OK` or `ERROR`, then a newline and the text.
///
/// | request | response |
/// | --- | --- |
/// | `LIST_ROOMS` | `OK\n`, then `ROOM: N clients\n` per room, sorted |
/// | `CREATE_ROOM\nID` | `OK\nRoom 'ID' created` / `ERROR\nRoom 'ID' already exists` |
/// | `DELETE_ROOM\nID` | `OK\nRoom 'ID' deleted` / `ERROR\nRoom 'ID' not found` |
/// | `ROOM_CLIENTS\nID` | `OK\nClients in 'ID':\n`, then `CLIENT-ID\n` per member / `ERROR\nRoom 'ID' not found` |
/// | `METRICS` | `OK\nconnections=N\nrooms=N\nclients=N\nuptime=Hhrs` |
/// | `ROOM_META_GET\nID\nKEY` | `OK\nVALUE` / `ERROR\nRoom 'ID' not found` / `ERROR\nKey 'KEY' not set in room 'ID'` |
/// | `ROOM_META_SET\nID\nKEY\nVALUE` | `OK\nRoom 'ID' key 'KEY' set` / `ERROR\nRoom 'ID' not found` |
/// | `KICK\nCLIENT-ID[\nREASON]` | `OK\nClient 'ID' kicked` / `ERROR\nClient 'ID' not found` / `ERROR\nInvalid client ID: ID` |
/// | `ROOM_BROADCAST\nID\nTEXT` | `OK\nBroadcast to 'ID': N bytes` / `ERROR\nRoom 'ID' not found` |
/// | `NODES` (GhostSync only) | `OK\n`, then `NAME: N members\n` for this relay and each live one of its cluster, sorted; `ERROR\nNot in a cluster` |
///
/// Otherwise: `ERROR\nUnknown command: NAME` (upper-cased), `ERROR\nMissing argument at position
/// N` (N counts arguments from 0), `ERROR\nInvalid UTF-8`; a frame longer than `maxRequest`
/// closes the connection without an answer.
///
/// No authentication: bind it to loopback (the default) or a trusted network only.
package struct ControlProtocol: OpsProtocol {
    /// The longest request body; a longer frame closes the connection (as the original does).
    package static let maxRequest = 1 << 20

    let handle: ServerHandle
    let startedAt: ContinuousClock.Instant

    package init(handle: ServerHandle, startedAt: ContinuousClock.Instant) {
        self.handle = handle
        self.startedAt = startedAt
    }

    package func respond(to input: inout [UInt8]) -> (output: [UInt8], close: Bool) {
        var output: [UInt8] = []
        while input.count >= 4 {
            let length = Int(UInt32(input[0]) << 24 | UInt32(input[1]) << 16 | UInt32(input[2]) << 8 | UInt32(input[3]))
            // Decided on the length alone, before buffering the body.
            if length > Self.maxRequest { return (output, true) }
            guard input.count >= 4 + length else { break }
            let body = Array(input[4..<(4 + length)])
            input.removeFirst(4 + length)
            guard let text = String(validating: body, as: UTF8.self) else {
                output += Self.frame("ERROR\nInvalid UTF-8")
                continue
            }
            output += Self.frame(execute(text))
        }
        return (output, false)
    }

    /// Runs one request (text without the frame prefix) and returns the response text.
    package func execute(_ request: String) -> String {
        // "\r\n" is one Character in Swift, so it is a separator of its own.
        let lines = request.split(omittingEmptySubsequences: false) { $0 == "\n" || $0 == "\r\n" }
        let command = (lines.first.map(Self.trimmed) ?? "").uppercased()
        let arguments = lines.dropFirst().map(Self.trimmed)
        func argument(_ position: Int) throws(ControlError) -> String {
            guard position < arguments.count, !arguments[position].isEmpty else {
                throw ControlError("Missing argument at position \(position)")
            }
            return arguments[position]
        }
        do throws(ControlError) {
            switch command {
            case "LIST_ROOMS":
                let counts = handle.roomClientCounts
                return "OK\n" + counts.keys.sorted().map { "\($0): \(counts[$0] ?? 0) clients\n" }.joined()
            case "CREATE_ROOM":
                let id = try argument(0)
                do throws(ServerError) {
                    try handle.createRoom(id)
                    return "OK\nRoom '\(id)' created"
                } catch .roomAlreadyExists {
                    return "ERROR\nRoom '\(id)' already exists"
                } catch {
                    return "ERROR\n\(error)"
                }
            case "DELETE_ROOM":
                let id = try argument(0)
                do throws(ServerError) {
                    try handle.removeRoom(id)
                    return "OK\nRoom '\(id)' deleted"
                } catch .roomNotFound {
                    return Self.roomNotFound(id)
                } catch {
                    return "ERROR\n\(error)"
                }
            case "ROOM_CLIENTS":
                let id = try argument(0)
                guard let clients = handle.roomClients(id) else { return Self.roomNotFound(id) }
                return "OK\nClients in '\(id)':\n" + clients.map { $0.uuidString.lowercased() + "\n" }.joined()
            case "NODES":
                guard let name = handle.clusterNodeName else { return "ERROR\nNot in a cluster" }
                let nodes = [(name, handle.clientCount)] + handle.clusterNodes.map { ($0.name, $0.members) }
                var registry = ""
                if let ready = handle.clusterRegistryReady {
                    registry = ready ? "registry: up\n" : "registry: down (\(handle.clusterRegistryLastError ?? "connecting"))\n"
                }
                return "OK\n" + nodes.sorted { $0.0 < $1.0 }.map { "\($0.0): \($0.1) members\n" }.joined() + registry
            case "METRICS":
                let totals = handle.workerStatistics.reduce(WorkerStatistics(), +)
                let hours = (ContinuousClock.now - startedAt).components.seconds / 3600
                return "OK\nconnections=\(totals[.connectionsAccepted])\nrooms=\(handle.roomCount)\nclients=\(handle.clientCount)\nuptime=\(hours)hrs"
            case "ROOM_META_GET":
                let id = try argument(0)
                let key = try argument(1)
                guard handle.roomExists(id) else { return Self.roomNotFound(id) }
                guard let value = handle.roomMeta(id, key: key) else { return "ERROR\nKey '\(key)' not set in room '\(id)'" }
                return "OK\n\(value)"
            case "ROOM_META_SET":
                let id = try argument(0)
                let key = try argument(1)
                // The value is the rest of the request: it may be empty or span lines.
                let value = arguments.dropFirst(2).joined(separator: "\n")
                if handle.setRoomMeta(id, key: key, value: value) { return "OK\nRoom '\(id)' key '\(key)' set" }
                return handle.roomExists(id) ? "ERROR\nCluster registry unavailable: key '\(key)' not set" : Self.roomNotFound(id)
            case "KICK":
                let text = try argument(0)
                guard let id = UUID(uuidString: text) else { return "ERROR\nInvalid client ID: \(text)" }
                let reason = arguments.count > 1 ? arguments[1] : ""
                do throws(ServerError) {
                    try handle.disconnect(clientID: id, reason: reason)
                    return "OK\nClient '\(text)' kicked"
                } catch .clientNotFound {
                    return "ERROR\nClient '\(text)' not found"
                } catch {
                    return "ERROR\n\(error)"
                }
            case "ROOM_BROADCAST":
                let id = try argument(0)
                // The text is every line after the room, as sent (not trimmed); the request's
                // final newline ends it rather than belonging to it.
                var textLines = lines.dropFirst(2).map(String.init)
                if textLines.count > 1, textLines.last == "" { textLines.removeLast() }
                let text = textLines.joined(separator: "\n")
                do throws(ServerError) {
                    try handle.broadcast(roomID: id, data: Array(text.utf8))
                    return "OK\nBroadcast to '\(id)': \(text.utf8.count) bytes"
                } catch .roomNotFound {
                    return Self.roomNotFound(id)
                } catch {
                    return "ERROR\n\(error)"
                }
            default:
                return "ERROR\nUnknown command: \(command)"
            }
        } catch {
            return "ERROR\n\(error.message)"
        }
    }

    private static func roomNotFound(_ id: String) -> String { "ERROR\nRoom '\(id)' not found" }

    /// Without surrounding whitespace, `\r` included (requests typed with CRLF line ends).
    private static func trimmed(_ text: Substring) -> String {
        String(text.drop { $0.isWhitespace }.reversed().drop { $0.isWhitespace }.reversed())
    }

    package static func frame(_ text: String) -> [UInt8] {
        let body = Array(text.utf8)
        let length = UInt32(body.count)
        return [UInt8(length >> 24), UInt8(length >> 16 & 0xff), UInt8(length >> 8 & 0xff), UInt8(length & 0xff)] + body
    }
}

struct ControlError: Error {
    let message: String
    init(_ message: String) { self.message = message }
}
