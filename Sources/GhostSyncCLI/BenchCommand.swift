import ArgumentParser
import GhostSyncBench
import Glibc

extension BenchTarget: ExpressibleByArgument {}
extension BenchMode: ExpressibleByArgument {}
extension BenchTransport: ExpressibleByArgument {}

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

            --transport ws (GhostSync only) makes every client a browser-like WebSocket client: \
            it connects to --ws-addr, the relay's WebSocket address (`ghost-sync relay --ws \
            HOST:PORT`; required, there is no default), sends an HTTP/1.1 upgrade offering \
            ghost-sync.v1, checks the 101 answer and its Sec-WebSocket-Accept (a failed handshake \
            fails the run), then joins and sends each message as one masked binary frame (a random \
            masking key per connection). --addr is not used then. Everything else, and the \
            report, is the same as over TCP; the JSON line says "transport":"ws" (else "tcp").

            Several relays of one cluster (`relay --cluster`): repeat --addr (or --ws-addr). \
            The members of each room alternate over them (the k-th member of a room connects to \
            relay k mod N), so every room has members on every relay and the clients split evenly \
            when each room's member count is a multiple of N. The report adds the deliveries \
            and latency between clients of the same relay and of different relays ("same_relay", \
            "cross_relay"). Repeat --server-pid to count the CPU of every relay and NATS server \
            (summed; each one's in "server_cpu_seconds_each"), and give --nats-monitor (a \
            nats-server's -m port) for the NATS messages per broadcast over the measured window, \
            and --metrics once per relay for each relay's frames and NATS messages ("relay_counters").
            """
    )

    @Option(help: "ghost, redis or nats.")
    var target: BenchTarget = .ghost
    @Option(help: ArgumentHelp(
        "Relay address (TCP); repeat for the relays of a cluster, each room's members alternating over them (default: 127.0.0.1:7777).",
        valueName: "host:port"))
    var addr: [String] = []
    @Option(help: "tcp, or ws for WebSocket clients to --ws-addr, connecting as browsers do (--target ghost only).")
    var transport: BenchTransport = .tcp
    @Option(name: .customLong("ws-addr"), help: ArgumentHelp(
        "The relay's WebSocket address (its --ws), for --transport ws; repeatable, like --addr.", valueName: "host:port"))
    var webSocketAddress: [String] = []
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
    @Option(help: ArgumentHelp(
        "The relay's PID: its CPU time over the measured window is reported. Repeatable: the CPU of every relay and NATS server given is summed.",
        valueName: "pid"))
    var serverPID: [Int32] = []
    @Option(name: .customLong("nats-monitor"), help: ArgumentHelp(
        "A NATS server's monitoring endpoint (nats-server -m): its /varz in_msgs and out_msgs over the measured window, per broadcast. Repeatable (summed).",
        valueName: "host:port"))
    var natsMonitor: [String] = []
    @Option(help: ArgumentHelp(
        "A GhostSync relay's metrics endpoint (host:port): per-worker counters over the measured window, with CPU per worker thread when --server-pid is given. Repeat for the relays of a cluster (the first one's per worker): each relay's frames and NATS messages over the window.",
        valueName: "host:port"))
    var metrics: [String] = []
    @Option(help: "Room name prefix.")
    var roomPrefix = "room-"
    @Flag(help: "Print one JSON object instead of a table.")
    var json = false

    func validate() throws {
        if !webSocketAddress.isEmpty && transport != .webSocket {
            throw ValidationError("--ws-addr is for --transport ws (the clients use --addr over TCP)")
        }
    }

    func run() async throws {
        var configuration = BenchConfiguration()
        configuration.target = target
        if !addr.isEmpty { configuration.addresses = addr }
        configuration.transport = transport
        configuration.webSocketAddresses = webSocketAddress
        configuration.clients = clients
        configuration.rooms = rooms
        configuration.rate = rate
        configuration.payload = payload
        configuration.duration = duration.duration
        configuration.warmup = warmup.duration
        configuration.mode = mode
        configuration.window = window
        configuration.threads = threads
        configuration.serverPIDs = serverPID
        configuration.natsMonitorAddresses = natsMonitor
        configuration.roomPrefix = roomPrefix
        configuration.metricsAddresses = metrics
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
