import ArgumentParser
import GhostSync

/// `ghost-sync send ROOM TEXT`: join, broadcast once, exit.
struct SendCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "send",
        abstract: "Join a room, broadcast one message, and exit."
    )

    @Argument(help: "The room to join.")
    var room: String
    @Argument(help: "The text to broadcast.")
    var text: String
    @OptionGroup var relay: RelayAddressOptions
    @Flag(help: "Print events as JSON lines.")
    var json = false

    func run() async throws {
        let client = try await connectAndJoin(addr: relay.address, room: room, printer: EventPrinter(json: json))
        try await client.broadcast(Array(text.utf8))
        // Round trip before closing, so the relay has handled the broadcast.
        try await client.echoTest([])
        while let event = try await client.recv() {
            if case .echoTest = event { break }
        }
        client.close()
    }
}
