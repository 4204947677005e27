import ArgumentParser
import GhostSync
import Glibc

/// `ghost-sync join ROOM`: a client for humans and scripts.
struct JoinCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "join",
        abstract: "Join a room, print every event, and broadcast each line typed on stdin."
    )

    @Argument(help: "The room to join.")
    var room: String
    @OptionGroup var relay: RelayAddressOptions
    @Flag(help: "Print events as JSON lines.")
    var json = false

    func run() async throws {
        let printer = EventPrinter(json: json)
        let client = try await connectAndJoin(addr: relay.address, room: room, printer: printer)
        let lines = StandardInputLines.start()
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                for await line in lines {
                    try await client.broadcast(Array(line.utf8))
                }
            }
            group.addTask {
                for try await event in client.events {
                    printer.print(event)
                    fflush(nil)
                }
                throw ExitCode.success  // the relay closed the connection
            }
            // Ends when the relay closes (stdin reaching its end only stops the sending side).
            while true {
                do {
                    try await group.next()
                } catch let exit as ExitCode {
                    group.cancelAll()
                    throw exit
                }
            }
        }
    }
}

/// Connects, joins, and prints the join's outcome; exits non-zero if the join fails.
func connectAndJoin(addr: String, room: String, printer: EventPrinter) async throws -> Client {
    let client: Client
    do {
        client = try await Client.connect(to: addr)
    } catch {
        throw CommandFailure("\(error)")
    }
    try await client.join(room)
    guard let reply = try await client.recv() else { throw CommandFailure("the relay closed the connection") }
    printer.print(reply)
    fflush(nil)
    guard case .joined = reply else { throw ExitCode(1) }
    return client
}

/// An error that ends the command with a one-line message and exit code 1.
struct CommandFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Lines of standard input, read on a plain thread (never blocking a Swift concurrency thread).
enum StandardInputLines {
    static func start() -> AsyncStream<String> {
        let (stream, continuation) = AsyncStream<String>.makeStream()
        do {
            try NativeThread.start(name: "ghost-stdin", detached: true) {
                while let line = readLine() { continuation.yield(line) }
                continuation.finish()
            }
        } catch {
            continuation.finish()  // no reader thread: behave as an empty input
        }
        return stream
    }
}
