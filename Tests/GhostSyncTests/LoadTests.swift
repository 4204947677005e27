import Testing
@testable import GhostSync

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

extension Relay {
    /// The original suite's load test: 256 clients broadcasting in one room for a few seconds,
    /// every frame delivered exactly once, nothing dropped.
    @Suite struct LoadTests {
        @Test(arguments: [1, 2])
        func twoHundredFiftySixClientsInOneRoom(workers: Int) async throws {
            var server: ServerHandle?
            try await withServer(workers: workers) { handle, port in
                server = handle
                let clientCount = 256
                var clients: [Client] = []
                var ids: [UUID] = []
                for _ in 0..<clientCount {
                    let client = try await Client.local(port)
                    ids.append(try await client.joined("lobby"))
                    clients.append(client)
                }
                let index = Dictionary(uniqueKeysWithValues: ids.enumerated().map { ($1, $0) })
                let members = clients
                let start = ContinuousClock.now
                var rounds = 0
                while rounds < 3 || ContinuousClock.now - start < .seconds(2) {
                    let round = rounds
                    for (sender, client) in clients.enumerated() {
                        try await client.broadcast([UInt8(round & 0xff), UInt8(sender & 0xff), UInt8(sender >> 8)])
                    }
                    // Every client drains concurrently: its round's 255 broadcasts, once each, in
                    // the order of that sender's frames; PlayerJoined from the join storm first.
                    let delivered = try await within(.seconds(30), "round \(round)") {
                        try await withThrowingTaskGroup(of: Int.self) { group in
                            for (receiver, client) in members.enumerated() {
                                group.addTask {
                                    var seen = [Bool](repeating: false, count: clientCount)
                                    var count = 0
                                    while count < clientCount - 1 {
                                        guard let event = try await client.recv() else { return count }
                                        if case .playerJoined = event, round == 0 { continue }
                                        guard case .broadcast(let from, let data) = event, let sender = index[from] else {
                                            Issue.record("unexpected \(event)")
                                            return count
                                        }
                                        if sender == receiver || seen[sender]
                                            || data != [UInt8(round & 0xff), UInt8(sender & 0xff), UInt8(sender >> 8)] {
                                            Issue.record("wrong delivery \(data) from \(sender) to \(receiver)")
                                        }
                                        seen[sender] = true
                                        count += 1
                                    }
                                    return count
                                }
                            }
                            return try await group.reduce(0, +)
                        }
                    }
                    #expect(delivered == clientCount * (clientCount - 1))
                    rounds += 1
                }
                for client in clients { #expect(try await client.sync() == []) }  // none twice
            }
            let totals = server!.workerStatistics.reduce(WorkerStatistics(), +)
            #expect(totals[.framesDropped] == 0)
        }
    }
}
