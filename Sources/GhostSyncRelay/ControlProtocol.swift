import GhostSync

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The relay's control protocol, compatible with the original daemon's: each request and each
/// response is a frame of a 4-byte big-endian length plus UTF-8 text. A request's first line is
/// the command, the next lines its arguments; a response starts with `OK` or `ERROR`, then lines.
///
/// | command | arguments | response |
/// | --- | --- | --- |
/// | `LIST_ROOMS` | — | `OK`, then `ROOM: N clients` per room |
/// | `CREATE_ROOM` | ID | `OK` / `ERROR` |
/// | `DELETE_ROOM` | ID | `OK` / `ERROR` |
/// | `ROOM_CLIENTS` | ID | `OK`, then one client ID per line |
/// | `METRICS` | — | `OK`, then `key=value` lines |
/// | `ROOM_META_GET` | ID, KEY | `OK`, then the value |
/// | `ROOM_META_SET` | ID, KEY, VALUE | `OK` / `ERROR` |
///
/// No authentication: bind it to loopback (the default) or a trusted network only.
package struct ControlProtocol: OpsProtocol {
    package static let maxRequest = 64 * 1024

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
            if length > Self.maxRequest {
                output += Self.frame("ERROR\nrequest of \(length) bytes exceeds the limit of \(Self.maxRequest)")
                return (output, true)
            }
            guard input.count >= 4 + length else { break }
            let body = Array(input[4..<(4 + length)])
            input.removeFirst(4 + length)
            guard let text = String(validating: body, as: UTF8.self) else {
                output += Self.frame("ERROR\nrequest is not valid UTF-8")
                continue
            }
            output += Self.frame(execute(text))
        }
        return (output, false)
    }

    /// Runs one request (text without the frame prefix) and returns the response text.
    package func execute(_ request: String) -> String {
        let lines = request.split(separator: "\n", omittingEmptySubsequences: false).map {
            $0.hasSuffix("\r") ? String($0.dropLast()) : String($0)
        }
        let command = lines.first?.trimmingSpaces ?? ""
        let arguments = Array(lines.dropFirst())
        func argument(_ index: Int, _ name: String) -> Result<String, ControlError> {
            index < arguments.count && !arguments[index].isEmpty ? .success(arguments[index]) : .failure(ControlError("missing argument: \(name)"))
        }
        do {
            switch command {
            case "LIST_ROOMS":
                let lines = handle.roomIDs.map { "\($0): \(handle.roomClientCount($0) ?? 0) clients" }
                return (["OK"] + lines).joined(separator: "\n")
            case "CREATE_ROOM":
                let id = try argument(0, "room ID").get()
                do {
                    try handle.createRoom(id)
                    return "OK"
                } catch {
                    return "ERROR\n\(error)"
                }
            case "DELETE_ROOM":
                let id = try argument(0, "room ID").get()
                return handle.deleteRoom(id) ? "OK" : "ERROR\nroom not found: \(id)"
            case "ROOM_CLIENTS":
                let id = try argument(0, "room ID").get()
                guard let clients = handle.roomClients(id) else { return "ERROR\nroom not found: \(id)" }
                return (["OK"] + clients.map { $0.uuidString.lowercased() }).joined(separator: "\n")
            case "METRICS":
                let totals = handle.workerStatistics.reduce(WorkerStatistics(), +)
                let uptime = ContinuousClock.now - startedAt
                return [
                    "OK",
                    "connections=\(totals[.connectionsAccepted])",
                    "rooms=\(handle.roomCount)",
                    "clients=\(handle.clientCount)",
                    "uptime=\(uptime.components.seconds)",
                ].joined(separator: "\n")
            case "ROOM_META_GET":
                let id = try argument(0, "room ID").get()
                let key = try argument(1, "key").get()
                guard handle.roomExists(id) else { return "ERROR\nroom not found: \(id)" }
                guard let value = handle.roomMeta(id, key: key) else { return "ERROR\nno value for key: \(key)" }
                return "OK\n\(value)"
            case "ROOM_META_SET":
                let id = try argument(0, "room ID").get()
                let key = try argument(1, "key").get()
                let value = arguments.count > 2 ? arguments[2...].joined(separator: "\n") : ""
                return handle.setRoomMeta(id, key: key, value: value) ? "OK" : "ERROR\nroom not found: \(id)"
            case "":
                return "ERROR\nempty request"
            default:
                return "ERROR\nunknown command: \(command)"
            }
        } catch {
            return "ERROR\n\(error.message)"
        }
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

extension StringProtocol {
    var trimmingSpaces: String {
        String(drop { $0 == " " || $0 == "\t" }.reversed().drop { $0 == " " || $0 == "\t" }.reversed())
    }
}
