import ArgumentParser

/// `ghost-sync`: the packaged relay and its tools.
@main
struct GhostSyncCommand: AsyncParsableCommand {
    static let version = "0.1.0"

    static let configuration = CommandConfiguration(
        commandName: "ghost-sync",
        abstract: "A room-based TCP relay for real-time multiplayer, wire-compatible with ghost-sync.",
        version: version,
        subcommands: [RelayCommand.self, JoinCommand.self, SendCommand.self, AdminCommand.self, BenchCommand.self, WebSocketEchoCommand.self]
    )
}
