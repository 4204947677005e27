// A minimal relay embedded with the GhostSync library: the guide's "embedded" usage model.
// `make run` starts it. Usage: ghost-sync-example [BIND_ADDRESS]   (default 0.0.0.0:7777)
import GhostSync
import Glibc

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

struct ExampleHandler: ServerHandler {
    func onJoin(clientID: UUID, roomID: String, address: SocketAddress) -> Bool {
        print("\(clientID) from \(address) joined \(roomID)")
        return true
    }

    func onBackpressure(clientID: UUID, roomID: String) {
        print("slow client \(clientID) in \(roomID): frame dropped")
    }

    func onDisconnect(clientID: UUID, address: SocketAddress, reason: DisconnectReason) {
        print("\(clientID) disconnected: \(reason)")
    }
}

let bind = CommandLine.arguments.dropFirst().first ?? "0.0.0.0:7777"
do {
    let handle = try await ShardedServer.builder()
        .bind(bind)
        .handler(ExampleHandler())
        .build()
        .run()
    for room in ["lobby", "deathmatch", "duel"] {
        try handle.createRoom(room)
    }
    print("ghost-sync example relay listening on \(handle.localAddress)")
    print("topology: \(handle.topology)")
    print("rooms: \(handle.roomIDs.joined(separator: ", ")); Ctrl-C to stop")
    await TerminationSignal.wait()
    print("shutting down")
    await handle.shutdown()
} catch {
    let message = "ghost-sync-example: \(error)\n"
    _ = message.withCString { write(2, $0, strlen($0)) }
    exit(1)
}
