// The guide's client example (docs/guide.md, "Client"), built by `make test` so it keeps
// compiling. Usage: ghost-sync-client-example [ADDRESS] [ROOM]   (default 127.0.0.1:7777 lobby)
import GhostSync
import Glibc  // exit

let address = CommandLine.arguments.dropFirst().first ?? "127.0.0.1:7777"
let room = CommandLine.arguments.dropFirst(2).first ?? "lobby"

do {
    let client = try await Client.connect(to: address)
    // join() waits for the relay's answer (requestJoin(_:) only sends).
    do {
        let clientID = try await client.join(room)
        print("joined \(room) as \(clientID)")
    } catch SyncError.joinRefused(let message) {
        print("join failed: \(message)")
        exit(1)
    }

    try await client.broadcast(Array("hello room".utf8))

    // Keep receiving: that is also where keepalive pings are answered.
    for try await event in client.events {
        switch event {
        case .broadcast(let senderID, let data):
            print("\(senderID): \(String(decoding: data, as: UTF8.self))")
        case .playerJoined(let clientID):
            print(">> \(clientID) joined")
        case .playerLeft(let clientID):
            print(">> \(clientID) left")
        default:
            break
        }
    }
    print("server closed the connection")
} catch {
    print("error: \(error)")
    exit(1)
}
