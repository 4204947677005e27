// The packaged relay (`RelayService`, as `ghost-sync relay` runs it) behind a synchronous main,
// for Benchmarks/count.sh: valgrind 3.19 (Debian 12) crashes ("the 'impossible' happened") as
// soon as a program whose main thread has entered `dispatch_main` starts a thread, which is what
// every Swift async main does. Here the main thread only waits on a semaphore. Nothing in the
// relay runs on the main actor, so nothing else differs.
//
//   ghost-sync-count-relay --bind H:P --metrics H:P --rooms N [--ws H:P] [--cpus 0]
//     [--ping-interval S] [--idle-timeout S]    (one worker; no control endpoint)
import Dispatch
import GhostSync
import GhostSyncRelay
import Glibc
import Logging

func fail(_ text: String) {
    _ = text.withCString { write(2, $0, strlen($0)) }
}

var options: [String: String] = [:]
var arguments = CommandLine.arguments.dropFirst()
while let key = arguments.popFirst() {
    guard key.hasPrefix("--"), let value = arguments.popFirst() else {
        fail("usage: ghost-sync-count-relay --bind H:P --metrics H:P --rooms N [--ws H:P] [--cpus 0] [--ping-interval S] [--idle-timeout S]\n")
        exit(64)
    }
    options[String(key.dropFirst(2))] = value
}
LoggingSystem.bootstrap { label in
    var handler = StreamLogHandler.standardError(label: label)
    handler.logLevel = .warning
    return handler
}
var configuration = RelayConfiguration()
configuration.server.bindAddress = options["bind"] ?? "127.0.0.1:0"
configuration.server.workers = 1
configuration.server.cpus = options["cpus"].flatMap(Int.init).map { [$0] }
configuration.server.numaAware = false
configuration.server.pingInterval = .seconds(Int(options["ping-interval"] ?? "13") ?? 13)
configuration.server.idleTimeout = .seconds(Int(options["idle-timeout"] ?? "31") ?? 31)
if let webSocket = options["ws"] { configuration.server.webSocket = WebSocketConfiguration(bindAddress: webSocket) }
configuration.rooms = (0..<(Int(options["rooms"] ?? "10") ?? 10)).map { "room-\($0 + 1)" }
configuration.controlAddress = nil
configuration.metricsAddress = options["metrics"] ?? "127.0.0.1:0"

let relay = RelayService(configuration: configuration, logger: Logger(label: "ghost-sync"), version: "count") { addresses in
    print(addresses.readyLine)
    fflush(nil)
}
let done = DispatchSemaphore(value: 0)
// Detached: top-level code is on the main actor, whose queue nothing drains here.
Task.detached {
    do { try await relay.run() } catch { fail("ghost-sync-count-relay: \(error)\n") }
    done.signal()
}
done.wait()
