import ArgumentParser
import GhostSync
import GhostSyncRelay
import Glibc
import Logging
import ServiceLifecycle

/// `ghost-sync ws-echo`: the relay's WebSocket codec on its own reactor, echoing every message,
/// for conformance suites (Autobahn TestSuite's fuzzing client).
struct WebSocketEchoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ws-echo",
        abstract: "Diagnostic: a WebSocket endpoint that echoes every message (text or binary) back verbatim.",
        discussion: """
            The same handshake, framing, control-frame and close handling as the relay's --ws \
            port, on the same worker loop; only the messages are echoed instead of being read as \
            relay requests. Text must be UTF-8. Prints `ghost-sync ready ws=ADDR` on stdout once \
            it listens; SIGINT or SIGTERM stop it.
            """
    )

    @Option(help: "Listen address (port 0 picks a free port).")
    var bind = "127.0.0.1:9001"
    @Option(help: "Largest message, in bytes (the relay's --max-payload).")
    var maxPayload = 64 * 1024
    @Option(help: "Worker threads.")
    var workers = 1

    func run() async throws {
        var settings = WebSocketConfiguration(bindAddress: bind)
        settings.echoesMessages = true
        let server = ShardedServer.builder()
            .bind("127.0.0.1:0")  // the TCP relay port, unused here
            .workers(workers)
            .pinning(false)
            .maxPayload(maxPayload)
            .channelCapacity(1 << 16)  // Autobahn's 9.* cases send long bursts
            .webSocket(settings)
            .build()
        let service = ShardedServerService(server, onStart: { handle in
            print("ghost-sync ready ws=\(handle.webSocketAddress!)")
            fflush(nil)
        })
        let group = ServiceGroup(configuration: .init(
            services: [.init(service: service)],
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: Logger(label: "ghost-sync.ws-echo")))
        try await group.run()
    }

}
