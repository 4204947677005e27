import Testing
@testable import GhostSync
@testable import GhostSyncRelay

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

extension Relay {
    /// Issue 10, defect 4: a worker whose `epoll_wait` fails used to end its loop silently and
    /// leave its mailbox open, so joins to its shard hung forever. Now the shard is marked
    /// failed: its connections end, joins to it get an Error, the other shards carry on, and
    /// health says so. The failure is real (the worker's epoll descriptor is replaced).
    @Suite struct WorkerFailureTests {
        @Test(arguments: [2, 4])
        func failedWorkerRefusesJoinsAndTheRestCarriesOn(workers: Int) async throws {
            let handler = RecordingHandler()
            let liveRoom = roomID(onShard: 0, of: workers, prefix: "live")
            let deadRoom = roomID(onShard: 1, of: workers, prefix: "dead")
            try await withServer(workers: workers, rooms: [liveRoom, deadRoom], configure: { $0.handler(handler) }) { handle, port in
                let stranded = try await Client.local(port)
                let strandedID = try await stranded.joined(deadRoom)
                let live = try await Client.local(port)
                let liveID = try await live.joined(liveRoom)
                #expect(handle.failedWorkers.isEmpty)

                handle.injectWorkerFailure(1)
                let failed = await handler.log.first { if case .workerFailed = $0 { return true } else { return false } }
                guard case .workerFailed(1, let reason) = failed else {
                    Issue.record("no onWorkerFailed for worker 1: \(String(describing: failed))")
                    return
                }
                #expect(reason.hasPrefix("epoll_wait"))
                #expect(handle.failedWorkers.map(\.worker) == [1])
                // Its connections end; the hook sees them go.
                #expect(try await stranded.recvWithin() == nil)
                #expect(await handler.log.first { $0 == .disconnect(strandedID, .connectionReset) } != nil)

                // A new client (accepted by a live worker) is told the shard is out of service,
                // stays connected, and relays through the others as before.
                let newcomer = try await Client.local(port)
                try await newcomer.requestJoin(deadRoom)
                #expect(try await newcomer.next() == .error("room unavailable: \(deadRoom)"))
                let newcomerID = try await newcomer.joined(liveRoom)
                #expect(try await live.next() == .playerJoined(clientID: newcomerID))
                try await newcomer.broadcast([7, 7])
                #expect(try await live.next() == .broadcast(senderID: newcomerID, data: [7, 7]))
                try await live.broadcast([8])
                #expect(try await newcomer.next() == .broadcast(senderID: liveID, data: [8]))
                #expect(handle.clientCount == 2)

                // The relay's health check answers 503 with the reason.
                var request = Array("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n".utf8)
                let (response, _) = MetricsEndpoint(metrics: RelayMetrics(handle: handle)).respond(to: &request)
                let text = String(decoding: response, as: UTF8.self)
                #expect(text.hasPrefix("HTTP/1.1 503 Service Unavailable\r\n"))
                #expect(text.hasSuffix("\r\n\r\nunhealthy\nworker 1 failed: \(reason)\n"))
            }
            #expect(handler.log.events.last == .shutdown)
        }
    }
}
