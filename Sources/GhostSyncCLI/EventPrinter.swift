import GhostSync
import GhostSyncRelay

/// Prints client events for humans (`+ID joined`, `ID: text`) or as JSON lines.
struct EventPrinter {
    let json: Bool

    func line(for event: ServerEvent) -> String {
        switch event {
        case .joined(let clientID, let roomID):
            return json ? object(["event": "joined", "room": roomID, "client": id(clientID)]) : "joined \(roomID) as \(id(clientID))"
        case .playerJoined(let clientID):
            return json ? object(["event": "player_joined", "client": id(clientID)]) : "+\(id(clientID)) joined"
        case .playerLeft(let clientID):
            return json ? object(["event": "player_left", "client": id(clientID)]) : "-\(id(clientID)) left"
        case .error(let message):
            return json ? object(["event": "error", "message": message]) : "error: \(message)"
        case .broadcast(let senderID, let data):
            if json {
                var fields = ["event": "broadcast", "sender": id(senderID)]
                if let text = String(validating: data, as: UTF8.self) { fields["text"] = text } else { fields["hex"] = hex(data) }
                return object(fields)
            }
            return "\(id(senderID)): \(String(validating: data, as: UTF8.self) ?? "0x" + hex(data))"
        case .echoTest(let data):
            return json ? object(["event": "echo", "hex": hex(data)]) : "echo: 0x\(hex(data))"
        }
    }

    private func id(_ uuid: UUID) -> String { uuid.uuidString.lowercased() }

    private func hex(_ bytes: [UInt8]) -> String {
        bytes.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
    }

    private func object(_ fields: [String: String]) -> String {
        "{" + fields.keys.sorted().map { "\(quote($0)):\(quote(fields[$0]!))" }.joined(separator: ",") + "}"
    }

    private func quote(_ text: String) -> String {
        JSONLogHandler.quote(text)
    }
}

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
