import Glibc
import Testing
@testable import GhostSync

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Starts relays named `names` in this process, all in a cluster over `nats` with a 100 ms
/// heartbeat (and `configure`'s settings), each ensuring `rooms` (the registry needs JetStream); waits until every worker's link is up and every relay hears
/// the others; runs `body`; shuts them down whatever happens.
func withCluster(
    _ names: [String], over servers: [String], workers: Int = 2, rooms: [String] = ["lobby"],
    handler: RecordingHandler? = nil,
    configure: (inout ClusterConfiguration) -> Void = { _ in },
    server: (ShardedServerBuilder) -> ShardedServerBuilder = { $0 },
    _ body: ([ServerHandle]) async throws -> Void
) async throws {
    var handles: [ServerHandle] = []
    do {
        for name in names {
            var cluster = ClusterConfiguration(servers: servers, nodeName: name)
            cluster.heartbeatInterval = .milliseconds(100)
            configure(&cluster)
            var builder = ShardedServer.builder().bind("127.0.0.1:0").workers(workers).cluster(cluster).webSocket(bind: "127.0.0.1:0")
            if let handler, name == names.first { builder = builder.handler(handler) }
            let handle = try await server(builder).build().run()
            handles.append(handle)
            for room in rooms { try handle.ensureRoom(room) }
        }
        try await eventually {
            handles.allSatisfy { $0.clusterLinksUp == workers && $0.clusterNodes.count == names.count - 1 }
        }
        try await body(handles)
    } catch {
        for handle in handles { await handle.shutdown() }
        throw error
    }
    for handle in handles { await handle.shutdown() }
}

extension NATSServerProcess {
    /// Subscriptions the server holds (`/subsz`).
    func subscriptionCount() -> Int {
        guard let body = try? monitor("/subsz") else { return -1 }
        let text = String(decoding: body, as: UTF8.self)
        guard let key = text.range(of: "\"num_subscriptions\":") else { return -1 }
        return Int(text[key.upperBound...].prefix { $0 == " " || $0.isNumber }.filter(\.isNumber)) ?? -1
    }

    /// Runs `body` (a join that makes a relay subscribe to a room) and waits until the server
    /// holds one more subscription. Delivery between relays is at most once: a join on one relay
    /// in the moment before another relay's new room subscription reaches the server is learnt
    /// by sync, and two joins in the same millisecond are simultaneous (docs/cluster.md). The
    /// tests that check exact events make the order unambiguous this way.
    func afterNewSubscription<T>(_ body: () throws -> T) async throws -> T {
        let before = subscriptionCount()
        let result = try body()
        try await eventually { subscriptionCount() > before }
        return result
    }
}

extension Relay {
    @Suite(.requiresNATSServer)
    struct ClusterTests {
        @Test(arguments: [1, 2])
        func membersOnTwoRelaysShareARoom(workers: Int) async throws {
            let nats = try NATSServerProcess.start(jetStream: true)
            defer { nats.stop() }
            try await withCluster(["a", "b"], over: [nats.clientURL], workers: workers, rooms: ["lobby", "elsewhere"]) { relays in
                let alice = try RawClient(port: relays[0].localAddress.port)
                let aliceID = try await nats.afterNewSubscription { try alice.join("lobby") }
                let bob = try RawClient(port: relays[1].localAddress.port)
                let bobID = try bob.join("lobby")
                #expect(try alice.receive() == .playerJoined(clientID: bobID))
                // Bob's relay has synced the room (so its subscription is in place) once it knows Alice.
                try await eventually { relays[1].roomClients("lobby").map(Set.init) == [aliceID, bobID] }
                try await eventually { relays[0].roomClients("lobby").map(Set.init) == [aliceID, bobID] }
                // A browser on relay b too: it cannot tell where the others are.
                let browser = try WebSocketTestClient.open(port: relays[1].webSocketAddress!.port)
                let browserID = try browser.join("lobby")
                #expect(try alice.receive() == .playerJoined(clientID: browserID))
                #expect(try bob.receive() == .playerJoined(clientID: browserID))
                // Broadcasts both ways, the sender excluded, one sender's order kept.
                for index in 0..<50 { try alice.send(.broadcast([UInt8(index)])) }
                for index in 0..<50 { #expect(try bob.receive() == .broadcast(senderID: aliceID, data: [UInt8(index)])) }
                for index in 0..<50 { #expect(try browser.receive() == .broadcast(senderID: aliceID, data: [UInt8(index)])) }
                try browser.send(.broadcast([7]))
                #expect(try alice.receive() == .broadcast(senderID: browserID, data: [7]))
                #expect(try bob.receive() == .broadcast(senderID: browserID, data: [7]))
                for index in 0..<50 { try bob.send(.broadcast([UInt8(index), 1])) }
                for index in 0..<50 { #expect(try alice.receive() == .broadcast(senderID: bobID, data: [UInt8(index), 1])) }
                for index in 0..<50 { #expect(try browser.receive() == .broadcast(senderID: bobID, data: [UInt8(index), 1])) }
                #expect(try alice.receiveIfAny(within: .milliseconds(100)) == nil)  // nothing of its own came back
                // A server broadcast on relay a reaches members on b.
                try relays[0].broadcast(roomID: "lobby", data: [9, 9])
                #expect(try bob.receive() == .broadcast(senderID: ServerHandle.serverID, data: [9, 9]))
                #expect(try browser.receive() == .broadcast(senderID: ServerHandle.serverID, data: [9, 9]))
                #expect(try alice.receive() == .broadcast(senderID: ServerHandle.serverID, data: [9, 9]))
                // Leaving, by switching rooms and by closing.
                _ = try bob.join("elsewhere")
                #expect(try alice.receive() == .playerLeft(clientID: bobID))
                #expect(try browser.receive() == .playerLeft(clientID: bobID))
                let carol = try RawClient(port: relays[1].localAddress.port)
                let carolID = try carol.join("lobby")
                #expect(try alice.receive() == .playerJoined(clientID: carolID))
                #expect(try browser.receive() == .playerJoined(clientID: carolID))
                carol.close()
                #expect(try alice.receive() == .playerLeft(clientID: carolID))
                #expect(try browser.receive() == .playerLeft(clientID: carolID))
                try await eventually { relays[0].roomClients("lobby").map(Set.init) == [aliceID, browserID] }
            }
        }

        /// Starts relay `b` as a process in the cluster (so it can be killed and stopped), and
        /// relay `a` in this process; Alice on a and Bob on b in `lobby`.
        private func twoRelaysWithAMemberEach(nats server: NATSServerProcess) async throws -> (a: ServerHandle, b: RelayProcess, alice: RawClient, bob: RawClient, bobID: UUID) {
            let nats = server.clientURL
            var cluster = ClusterConfiguration(servers: [nats], nodeName: "a")
            cluster.heartbeatInterval = .milliseconds(100)
            let a = try await ShardedServer.builder().bind("127.0.0.1:0").workers(2).cluster(cluster).build().run()
            try a.createRoom("lobby")
            let b = try RelayProcess(["--cluster", nats, "--node", "b", "--heartbeat-interval", "100ms"])
            try await eventually { a.clusterNodes.map(\.name) == ["b"] && a.clusterLinksUp == 2 }
            let alice = try RawClient(port: a.localAddress.port)
            let aliceID = try await server.afterNewSubscription { try alice.join("lobby") }
            let bob = try RawClient(port: b.relayPort)
            let bobID = try bob.join("lobby")
            #expect(try alice.receive() == .playerJoined(clientID: bobID))
            try await eventually { a.roomClients("lobby").map(Set.init) == [aliceID, bobID] }
            return (a, b, alice, bob, bobID)
        }

        @Test func aKilledRelaysMembersLeaveWithinTheDeadNodeTimeout() async throws {
            let nats = try NATSServerProcess.start(jetStream: true)
            defer { nats.stop() }
            let (a, b, alice, _, bobID) = try await twoRelaysWithAMemberEach(nats: nats)
            let killed = ContinuousClock.now
            b.process.signal(SIGKILL)
            #expect(try alice.receive(timeout: .seconds(5)) == .playerLeft(clientID: bobID))
            let took = ContinuousClock.now - killed
            #expect(took < .seconds(2), "PlayerLeft \(took) after SIGKILL; the dead-node timeout is 300 ms")
            try await eventually { a.clusterNodes.isEmpty && a.roomClients("lobby")?.count == 1 }
            await a.shutdown()
        }

        @Test func aStoppedRelayIsDeadThenBackWithItsMembers() async throws {
            let nats = try NATSServerProcess.start(jetStream: true)
            defer { nats.stop() }
            let (a, b, alice, bob, bobID) = try await twoRelaysWithAMemberEach(nats: nats)
            b.process.signal(SIGSTOP)
            #expect(try alice.receive(timeout: .seconds(5)) == .playerLeft(clientID: bobID))
            b.process.signal(SIGCONT)
            // Heard again: a syncs the room and announces what it finds.
            #expect(try alice.receive(timeout: .seconds(5)) == .playerJoined(clientID: bobID))
            try bob.send(.broadcast([1]))
            #expect(try alice.receive() == .broadcast(senderID: bobID, data: [1]))
            b.process.signal(SIGTERM)
            // A clean shutdown says so: Bob leaves at once, not after the timeout.
            #expect(try alice.receive(timeout: .seconds(5)) == .playerLeft(clientID: bobID))
            await a.shutdown()
        }

        @Test func relaysSurviveARestartOfTheirNATSServer() async throws {
            let nats = try NATSServerProcess.start(jetStream: true)
            defer { nats.stop() }
            let handler = RecordingHandler()
            try await withCluster(["a", "b"], over: [nats.clientURL], rooms: ["lobby"], handler: handler) { relays in
                let alice = try RawClient(port: relays[0].localAddress.port)
                let aliceID = try await nats.afterNewSubscription { try alice.join("lobby") }
                let bob = try RawClient(port: relays[1].localAddress.port)
                let bobID = try bob.join("lobby")
                #expect(try alice.receive() == .playerJoined(clientID: bobID))
                nats.stop()
                try await eventually { relays.allSatisfy { $0.clusterLinksUp == 0 } }
                // Relay a's hook heard each worker's link go down (the relay logs it).
                #expect(await handler.log.first { $0 == .clusterLink(worker: 0, isUp: false) } != nil)
                #expect(await handler.log.first { $0 == .clusterLink(worker: 1, isUp: false) } != nil)
                // Carol joins on b while the relays cannot talk: a hears of her after the re-sync.
                let carol = try RawClient(port: relays[1].localAddress.port)
                let carolID = try carol.join("lobby")
                #expect(try bob.receive() == .playerJoined(clientID: carolID))
                try nats.start()
                try await eventually(timeout: .seconds(15)) { relays.allSatisfy { $0.clusterLinksUp == 2 } }
                #expect(try alice.receive(timeout: .seconds(5)) == .playerJoined(clientID: carolID))
                try await eventually { relays[1].roomClients("lobby").map(Set.init) == [aliceID, bobID, carolID] }
                try alice.send(.broadcast([5]))
                #expect(try bob.receive() == .broadcast(senderID: aliceID, data: [5]))
                #expect(try carol.receive() == .broadcast(senderID: aliceID, data: [5]))
            }
        }

        @Test func relaysMoveToAnotherServerOfANATSCluster() async throws {
            let servers = try NATSCluster.start(size: 3, jetStream: true)
            defer { servers.stop() }
            // Each relay knows one server only; it learns the others from INFO (connect_urls).
            // The registry has a copy on every server, so it survives losing one.
            try await withCluster(["a", "b"], over: [servers.servers[0].clientURL], rooms: ["lobby"], configure: { $0.registryReplicas = 3 }) { relays in
                let alice = try RawClient(port: relays[0].localAddress.port)
                let aliceID = try await servers.servers[0].afterNewSubscription { try alice.join("lobby") }
                let bob = try RawClient(port: relays[1].localAddress.port)
                let bobID = try bob.join("lobby")
                #expect(try alice.receive() == .playerJoined(clientID: bobID))
                try await eventually { relays[1].roomClients("lobby").map(Set.init) == [aliceID, bobID] }
                servers.servers[0].signal(SIGKILL)
                try await eventually { relays.allSatisfy { ($0.workerStatistics.reduce(WorkerStatistics(), +))[.clusterDisconnects] >= 2 } }
                try await eventually(timeout: .seconds(15)) { relays.allSatisfy { $0.clusterLinksUp == 2 } }
                // Traffic flows again once the new subscriptions reach the whole NATS cluster.
                try await eventually(timeout: .seconds(10)) {
                    (try? alice.send(.broadcast([8]))) != nil && (try? bob.receiveIfAny(within: .milliseconds(200))) == .broadcast(senderID: aliceID, data: [8])
                }
                // Both clients stayed connected throughout.
                try bob.send(.echoTest([1]))
                #expect(try bob.receive() == .echoTest([1]))
                // The registry moved too: a room created on b now is joinable on a. JetStream
                // first elects new leaders for what the killed server led (seen 1–15 s here);
                // ensureRoom, since a create that timed out meanwhile may have been made.
                try await eventually(timeout: .seconds(40)) { (try? relays[1].ensureRoom("after")) != nil }
                try await eventually { relays[0].roomExists("after") }
            }
        }
    }
}
