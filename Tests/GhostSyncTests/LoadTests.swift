import Testing
@testable import GhostSync

extension Relay {
    /// The original suite's load test: 256 clients broadcasting in one room for a few seconds,
    /// every frame delivered exactly once, in order per sender, nothing dropped.
    @Suite struct LoadTests {
        @Test(arguments: [1, 2])
        func twoHundredFiftySixClientsInOneRoom(workers: Int) async throws {
            var server: ServerHandle?
            try await withServer(workers: workers) { handle, port in
                server = handle
                let clientCount = 256
                var clients: [TestClient] = []
                var ids: [UUID] = []
                for _ in 0..<clientCount {
                    let client = try TestClient(port: port)
                    ids.append(try client.join("lobby"))
                    clients.append(client)
                }
                // Drain the PlayerJoined storm: client i saw the (n - 1 - i) joins after its own.
                for (index, client) in clients.enumerated() {
                    for _ in 0..<(clientCount - 1 - index) { #expect(try client.receive().isPlayerJoined) }
                }
                let index = Dictionary(uniqueKeysWithValues: ids.enumerated().map { ($1, $0) })
                let start = ContinuousClock.now
                var rounds = 0
                var delivered = 0
                while rounds < 5 || ContinuousClock.now - start < .seconds(2) {
                    for (sender, client) in clients.enumerated() {
                        try client.send(.broadcast([UInt8(rounds & 0xff), UInt8(sender & 0xff), UInt8(sender >> 8)]))
                    }
                    for (receiver, client) in clients.enumerated() {
                        var seen = [Bool](repeating: false, count: clientCount)
                        for _ in 0..<(clientCount - 1) {
                            guard case .broadcast(let from, let data) = try client.receive() else {
                                Issue.record("expected a broadcast")
                                return
                            }
                            let sender = index[from]!
                            #expect(sender != receiver)
                            #expect(data == [UInt8(rounds & 0xff), UInt8(sender & 0xff), UInt8(sender >> 8)])
                            #expect(!seen[sender])
                            seen[sender] = true
                            delivered += 1
                        }
                    }
                    rounds += 1
                }
                #expect(delivered == rounds * clientCount * (clientCount - 1))
            }
            let totals = server!.workerStatistics.reduce(WorkerStatistics(), +)
            #expect(totals[.framesDropped] == 0)
        }
    }
}

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
