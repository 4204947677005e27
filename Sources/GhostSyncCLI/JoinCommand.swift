import ArgumentParser
import GhostSync

/// `ghost-sync join ROOM`: a client for humans and scripts.
struct JoinCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "join",
        abstract: "Join a room, print every event, and broadcast each line typed on stdin.",
        discussion: """
            Runs until the relay closes the connection, then prints why on stderr and exits 1. \
            The end of stdin only stops the sending side.
            """
    )

    @Argument(help: "The room to join.")
    var room: String
    @OptionGroup var relay: RelayAddressOptions
    @Flag(help: "Print events as JSON lines.")
    var json = false

    func run() async throws {
        let output = try ConsoleOutput.standardOutput()
        let session = try await RoomSession.join(room, at: relay.address, printer: EventPrinter(json: json), output: output)
        let lines = StandardInputLines.start()
        let client = session.client
        let ending = await withDiscardingTaskGroup(returning: ConnectionEnding?.self) { group in
            group.addTask {
                for await line in lines {
                    // A failed send means the connection is gone: the receiving side says how.
                    do { try await client.broadcast(line) } catch { return }
                }
            }
            let ending = await session.receive(printing: true)
            group.cancelAll()  // ends the wait for the next stdin line
            return ending
        }
        await output.drain()
        if let ending { throw ending }
    }
}
