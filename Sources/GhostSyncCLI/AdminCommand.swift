import ArgumentParser
import GhostSyncRelay

/// `ghost-sync admin ...`: the control protocol from a shell.
struct AdminCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "admin",
        abstract: "Manage a running relay through its control endpoint.",
        discussion: """
            Give the endpoint to `admin` (`admin --control ADDR rooms`), to the subcommand, or in \
            $GHOSTSYNC_CONTROL. Prints the relay's answer after `OK`; on `ERROR`, prints the \
            reason on stderr and exits 1.
            """,
        subcommands: [Rooms.self, Create.self, Delete.self, Clients.self, Metrics.self, Meta.self, Kick.self, Broadcast.self, Nodes.self]
    )

    @OptionGroup var endpoint: ControlEndpointOptions

    /// Sends one request and prints the text after `OK` (as the relay sent it), or fails with the
    /// text after `ERROR`. The subcommand's `--control` wins over the one given to `admin`.
    static func perform(_ request: [String], endpoint: ControlEndpointOptions, admin: AdminCommand) throws {
        let address = endpoint.explicitAddress ?? admin.endpoint.explicitAddress
            ?? environmentValue(ControlEndpointOptions.environmentVariable) ?? "127.0.0.1:8888"
        let response: String
        do {
            response = try ControlClient(address: address).response(to: request.joined(separator: "\n"))
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
        @ParentCommand var admin: AdminCommand
        @OptionGroup var endpoint: ControlEndpointOptions
        func run() throws { try AdminCommand.perform(["LIST_ROOMS"], endpoint: endpoint, admin: admin) }
    }

    struct Create: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a room.")
        @ParentCommand var admin: AdminCommand
        @OptionGroup var endpoint: ControlEndpointOptions
        @Argument var room: String
        func run() throws { try AdminCommand.perform(["CREATE_ROOM", room], endpoint: endpoint, admin: admin) }
    }

    struct Delete: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete a room (soft delete).")
        @ParentCommand var admin: AdminCommand
        @OptionGroup var endpoint: ControlEndpointOptions
        @Argument var room: String
        func run() throws { try AdminCommand.perform(["DELETE_ROOM", room], endpoint: endpoint, admin: admin) }
    }

    struct Clients: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the client IDs in a room.")
        @ParentCommand var admin: AdminCommand
        @OptionGroup var endpoint: ControlEndpointOptions
        @Argument var room: String
        func run() throws { try AdminCommand.perform(["ROOM_CLIENTS", room], endpoint: endpoint, admin: admin) }
    }

    struct Nodes: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "The relays of the cluster that are alive, with their member counts.")
        @ParentCommand var admin: AdminCommand
        @OptionGroup var endpoint: ControlEndpointOptions
        func run() throws { try AdminCommand.perform(["NODES"], endpoint: endpoint, admin: admin) }
    }

    struct Metrics: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Connections since start, rooms, clients, uptime in hours.")
        @ParentCommand var admin: AdminCommand
        @OptionGroup var endpoint: ControlEndpointOptions
        func run() throws { try AdminCommand.perform(["METRICS"], endpoint: endpoint, admin: admin) }
    }

    struct Kick: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Disconnect a client (it gets Error(\"kicked: REASON\"); its room sees it leave).")
        @ParentCommand var admin: AdminCommand
        @OptionGroup var endpoint: ControlEndpointOptions
        @Argument(help: "The client's ID (as `admin clients ROOM` lists it).") var client: String
        @Option(help: "Why, sent to the client and logged.") var reason = ""
        func run() throws { try AdminCommand.perform(["KICK", client, reason], endpoint: endpoint, admin: admin) }
    }

    struct Broadcast: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Send TEXT (as UTF-8 bytes) to every member of ROOM, from the server's ID (all zeros).")
        @ParentCommand var admin: AdminCommand
        @OptionGroup var endpoint: ControlEndpointOptions
        @Argument var room: String
        @Argument var text: String
        func run() throws { try AdminCommand.perform(["ROOM_BROADCAST", room, text], endpoint: endpoint, admin: admin) }
    }

    struct Meta: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Room metadata.", subcommands: [Get.self, Set.self])

        struct Get: ParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Print a room's value for KEY.")
            @ParentCommand var admin: AdminCommand
            @OptionGroup var endpoint: ControlEndpointOptions
            @Argument var room: String
            @Argument var key: String
            func run() throws { try AdminCommand.perform(["ROOM_META_GET", room, key], endpoint: endpoint, admin: admin) }
        }

        struct Set: ParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Set a room's KEY to VALUE.")
            @ParentCommand var admin: AdminCommand
            @OptionGroup var endpoint: ControlEndpointOptions
            @Argument var room: String
            @Argument var key: String
            @Argument var value: String
            func run() throws { try AdminCommand.perform(["ROOM_META_SET", room, key, value], endpoint: endpoint, admin: admin) }
        }
    }
}
