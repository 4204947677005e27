import ArgumentParser
import GhostSyncRelay

/// `ghost-sync admin ...`: the control protocol from a shell.
struct AdminCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "admin",
        abstract: "Manage a running relay through its control endpoint.",
        subcommands: [Rooms.self, Create.self, Delete.self, Clients.self, Metrics.self, Meta.self]
    )

    struct Options: ParsableArguments {
        @Option(help: "Control endpoint address.")
        var control = "127.0.0.1:8888"
    }

    /// Sends one request and prints the text after `OK` (as the relay sent it), or fails with the
    /// text after `ERROR`.
    static func perform(_ request: [String], control: String) throws {
        let response: String
        do {
            response = try ControlClient(address: control).response(to: request.joined(separator: "\n"))
        } catch {
            throw CommandFailure(error.description)
        }
        let status = response.prefix { $0 != "\n" }
        let text = response.dropFirst(status.count + 1)
        guard status == "OK" else {
            throw CommandFailure(text.isEmpty ? "the relay answered \(status)" : String(text))
        }
        // Room and client lists end in a newline already; single-line answers do not.
        if !text.isEmpty { print(text, terminator: text.hasSuffix("\n") ? "" : "\n") }
    }

    struct Rooms: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List rooms with their client counts.")
        @OptionGroup var options: Options
        func run() throws { try AdminCommand.perform(["LIST_ROOMS"], control: options.control) }
    }

    struct Create: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a room.")
        @OptionGroup var options: Options
        @Argument var room: String
        func run() throws { try AdminCommand.perform(["CREATE_ROOM", room], control: options.control) }
    }

    struct Delete: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete a room (soft delete).")
        @OptionGroup var options: Options
        @Argument var room: String
        func run() throws { try AdminCommand.perform(["DELETE_ROOM", room], control: options.control) }
    }

    struct Clients: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the client IDs in a room.")
        @OptionGroup var options: Options
        @Argument var room: String
        func run() throws { try AdminCommand.perform(["ROOM_CLIENTS", room], control: options.control) }
    }

    struct Metrics: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Connections since start, rooms, clients, uptime in hours.")
        @OptionGroup var options: Options
        func run() throws { try AdminCommand.perform(["METRICS"], control: options.control) }
    }

    struct Meta: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Room metadata.", subcommands: [Get.self, Set.self])

        struct Get: ParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Print a room's value for KEY.")
            @OptionGroup var options: Options
            @Argument var room: String
            @Argument var key: String
            func run() throws { try AdminCommand.perform(["ROOM_META_GET", room, key], control: options.control) }
        }

        struct Set: ParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Set a room's KEY to VALUE.")
            @OptionGroup var options: Options
            @Argument var room: String
            @Argument var key: String
            @Argument var value: String
            func run() throws { try AdminCommand.perform(["ROOM_META_SET", room, key, value], control: options.control) }
        }
    }
}
