import Testing
@testable import GhostSync

/// Every test that opens sockets or starts servers is nested in this suite, which runs its
/// tests one at a time: the blocking test clients then never starve each other, and the
/// descriptor-leak checks see only their own server.
@Suite(.serialized, .timeLimit(.minutes(3)))
enum Relay {}

/// Worker counts every multi-core behaviour is run with.
let workerCounts = [1, 2, 4]

/// Starts a server on 127.0.0.1 with an ephemeral port, creates `rooms`, runs `body`, and shuts
/// the server down whatever happens.
func withServer(
    workers: Int = 2,
    rooms: [String] = ["lobby"],
    configure: (ShardedServerBuilder) -> ShardedServerBuilder = { $0 },
    _ body: (ServerHandle, UInt16) async throws -> Void
) async throws {
    let builder = configure(ShardedServer.builder().bind("127.0.0.1:0").workers(workers))
    let handle = try await builder.build().run()
    do {
        for room in rooms { try handle.createRoom(room) }
        try await body(handle, handle.localAddress.port)
    } catch {
        await handle.shutdown()
        throw error
    }
    await handle.shutdown()
}

/// A room ID that hashes to `shard` (for placing rooms on chosen workers).
func roomID(onShard shard: Int, of workers: Int, prefix: String = "room") -> String {
    let map = ShardMap(workerCount: workers)
    var index = 0
    while true {
        let candidate = "\(prefix)-\(index)"
        if map.shard(of: candidate) == shard { return candidate }
        index += 1
    }
}
