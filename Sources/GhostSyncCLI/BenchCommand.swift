import ArgumentParser
import GhostSyncBench
import Glibc

extension BenchTarget: ExpressibleByArgument {}
extension BenchMode: ExpressibleByArgument {}

/// `ghost-sync bench`: the end-to-end load generator.
struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Drive a relay (GhostSync, Redis pub/sub or NATS) with simulated clients and report deliveries, losses, latency and CPU cost.",
        discussion: """
            Clients are dealt round-robin over rooms room-1 … room-N (`ghost-sync relay --rooms N` \
            creates them). Every message carries its sender, sequence number and send time; \
            receivers record one-way latency and account for every delivery. Only loopback or \
            your own hosts: never point it at someone else's server.
            """
    )

    @Option(help: "ghost, redis or nats.")
    var target: BenchTarget = .ghost
    @Option(help: "Relay address.")
    var addr = "127.0.0.1:7777"
    @Option(help: "Simulated clients (connections).")
    var clients = 100
    @Option(help: "Rooms (channels, subjects).")
    var rooms = 10
    @Option(help: "Messages per second per client (open loop), evenly paced.")
    var rate = 20.0
    @Option(help: "Bytes per message (at least 20).")
    var payload = 64
    @Option(help: "Measured time (500ms, 10s, 1m).")
    var duration = DurationArgument(argument: "10s")!
    @Option(help: "Warm-up before measuring.")
    var warmup = DurationArgument(argument: "2s")!
    @Option(help: "open (fixed rate) or closed (a window of messages in flight per client).")
    var mode: BenchMode = .open
    @Option(help: "Closed loop: messages in flight per client.")
    var window = 8
    @Option(help: "Load-generator threads.")
    var threads = 1
    @Option(help: "The relay's PID: its CPU time over the measured window is reported.")
    var serverPID: Int32?
    @Option(help: ArgumentHelp(
        "A GhostSync relay's metrics endpoint (host:port): per-worker counters over the measured window, with CPU per worker thread when --server-pid is given.",
        valueName: "host:port"))
    var metrics: String?
    @Option(help: "Room name prefix.")
    var roomPrefix = "room-"
    @Flag(help: "Print one JSON object instead of a table.")
    var json = false

    func run() async throws {
        var configuration = BenchConfiguration()
        configuration.target = target
        configuration.address = addr
        configuration.clients = clients
        configuration.rooms = rooms
        configuration.rate = rate
        configuration.payload = payload
        configuration.duration = duration.duration
        configuration.warmup = warmup.duration
        configuration.mode = mode
        configuration.window = window
        configuration.threads = threads
        configuration.serverPID = serverPID
        configuration.roomPrefix = roomPrefix
        configuration.metricsAddress = metrics
        do {
            let report = try await LoadGenerator.run(configuration) { line in
                let text = "\r\(line)   "
                _ = text.withCString { write(2, $0, strlen($0)) }
            }
            _ = "\n".withCString { write(2, $0, 1) }
            print(json ? report.json : report.table)
        } catch {
            throw CommandFailure("\(error)")
        }
    }
}
