import ArgumentParser
import GhostSync

/// `ghost-sync send ROOM TEXT`: join, broadcast once, exit.
struct SendCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "send",
        abstract: "Join a room, broadcast one message, and exit.",
        discussion: "Exits 1 with a line on stderr when the join fails or the relay closes the connection first."
    )

    @Argument(help: "The room to join.")
    var room: String
    @Argument(help: "The text to broadcast.")
    var text: String
    @OptionGroup var relay: RelayAddressOptions
    @Flag(help: "Print events as JSON lines.")
    var json = false

    func run() async throws {
        let output = try ConsoleOutput.standardOutput()
        let session = try await RoomSession.join(room, at: relay.address, printer: EventPrinter(json: json), output: output)
        defer { session.client.close() }
        do {
            try await session.client.broadcast(Array(text.utf8))
            // A round trip before closing, so the relay has handled the broadcast.
            try await session.client.echoTest([])
        } catch {
            // The connection is gone; receiving below says how.
        }
        var refusal: String?
        let ending = await session.receive(printing: false) { event in
            if case .error(let message) = event { refusal = message }
            if case .echoTest = event { return true }
            return false
        }
        await output.drain()
        if let ending { throw ending }
        if let refusal { throw CommandFailure("the relay refused the message: \(refusal)") }
    }
}
