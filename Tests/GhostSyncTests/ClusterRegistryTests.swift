import Glibc
import Synchronization
import Testing
@testable import GhostSync
@testable import GhostSyncRelay

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

extension Relay {
    /// Rooms are cluster-wide (docs/cluster.md): created, deleted and annotated on any relay,
    /// the same on all, through the JetStream key-value registry on a real nats-server.
    @Suite(.requiresNATSServer)
    struct ClusterRegistryTests {
        @Test func aRoomCreatedOnOneRelayIsJoinableOnTheOther() async throws {
            let nats = try NATSServerProcess.start(jetStream: true)
            defer { nats.stop() }
            let handler = RecordingHandler()
            try await withCluster(["a", "b"], over: [nats.clientURL], handler: handler) { relays in
                let (a, b) = (relays[0], relays[1])
                let created = ContinuousClock.now
                try a.createRoom("arena")
                #expect(a.roomExists("arena"))  // on the relay that made it: at once
                try await eventually { b.roomExists("arena") }
                let took = ContinuousClock.now - created
                #expect(took < .seconds(1), "b knew of the room \(took) after a created it")
                // Refused everywhere once it exists.
                #expect(throws: ServerError.roomAlreadyExists("arena")) { try b.createRoom("arena") }
                #expect(throws: ServerError.roomAlreadyExists("arena")) { try a.createRoom("arena") }
                #expect(try b.ensureRoom("arena") == false)
                // Joinable on b; a member on each relay hears the other.
                let alice = try RawClient(port: a.localAddress.port)
                let aliceID = try await nats.afterNewSubscription { try alice.join("arena") }
                let bob = try RawClient(port: b.localAddress.port)
                let bobID = try bob.join("arena")
                #expect(try alice.receive() == .playerJoined(clientID: bobID))
                try bob.send(.broadcast([1, 2]))
                #expect(try alice.receive() == .broadcast(senderID: bobID, data: [1, 2]))
                _ = aliceID
                // The hook ran on a for its own create (a is the relay with the handler).
                #expect(await handler.log.first { $0 == .roomCreate("arena") } != nil)
            }
        }

        /// As `make cluster-demo` starts them: the first relay creates the replicated bucket and
        /// at once writes to it, before JetStream has elected the stream's leader (a 503).
        @Test func relaysStartingTogetherOnAFreshJetStreamClusterShareTheirRooms() async throws {
            let servers = try NATSCluster.start(size: 3, jetStream: true, waitForJetStream: false)
            defer { servers.stop() }
            var cluster = ClusterConfiguration(servers: servers.servers.map(\.clientURL), nodeName: "a")
            cluster.registryReplicas = 3
            cluster.heartbeatInterval = .milliseconds(100)
            let first = cluster
            cluster.nodeName = "b"
            let second = cluster
            async let a = ShardedServer.builder().bind("127.0.0.1:0").workers(1).cluster(first).build().run()
            async let b = ShardedServer.builder().bind("127.0.0.1:0").workers(1).cluster(second).build().run()
            let relays = try await [a, b]
            for relay in relays { for room in ["lobby", "duel"] { try relay.ensureRoom(room) } }
            try await eventually { relays.allSatisfy { $0.roomIDs == ["duel", "lobby"] } }
            for relay in relays { await relay.shutdown() }
        }

        /// A write the bucket's stream cannot take yet (a 503: no leader, or no stream, as right
        /// after a replicated bucket is created) is sent again until the deadline, not failed.
        @Test func aWriteWithNoStreamToTakeItIsRetriedUntilTheStreamIsBack() async throws {
            let nats = try NATSServerProcess.start(jetStream: true)
            defer { nats.stop() }
            try await withCluster(["a"], over: [nats.clientURL], configure: { $0.registryTimeout = .seconds(10) }) { relays in
                let admin = try NATSTestClient(port: nats.port)
                let bucket = try KVBucketConfiguration(bucket: "ghost_rooms")
                _ = try admin.request(bucket.streamDeleteSubject)
                let outcome = Locked<Result<Void, ServerError>?>(nil)
                let thread = try NativeThread.start {
                    let result = Result { () throws(ServerError) in try relays[0].createRoom("arena") }
                    outcome.withLock { $0 = result }
                }
                // The write meets no stream (503) at least once before the stream is back.
                try await Task.sleep(for: .milliseconds(300))
                #expect(outcome.withLock { $0 } == nil)
                _ = try admin.request(bucket.streamCreateSubject, bucket.streamCreateRequest())
                pthread_join(thread, nil)
                #expect(outcome.withLock { $0.map { (try? $0.get()) != nil } } == true, "\(String(describing: outcome.withLock { $0 }))")
                #expect(relays[0].roomExists("arena"))
            }
        }

        @Test func twoRelaysCreatingTheSameRoomAtOnceOneWins() async throws {
            let nats = try NATSServerProcess.start(jetStream: true)
            defer { nats.stop() }
            try await withCluster(["a", "b"], over: [nats.clientURL]) { relays in
                for round in 0..<10 {
                    let roomID = "race-\(round)"
                    let outcomes = Locked<[Bool]>([])
                    let go = Atomic<Bool>(false)
                    var threads: [pthread_t] = []
                    for relay in relays {
                        threads.append(try NativeThread.start {
                            while !go.load(ordering: .acquiring) {}
                            let won = (try? relay.createRoom(roomID)) != nil
                            outcomes.withLock { $0.append(won) }
                        })
                    }
                    go.store(true, ordering: .releasing)
                    for thread in threads { pthread_join(thread, nil) }
                    #expect(outcomes.withLock { $0.filter { $0 }.count } == 1, "round \(round): \(outcomes.withLock { $0 })")
                    try await eventually { relays.allSatisfy { $0.roomExists(roomID) } }
                }
            }
        }

        @Test func aRoomDeletedOnOneRelayEndsEverywhere() async throws {
            let nats = try NATSServerProcess.start(jetStream: true)
            defer { nats.stop() }
            try await withCluster(["a", "b"], over: [nats.clientURL], rooms: ["lobby", "arena"]) { relays in
                let (a, b) = (relays[0], relays[1])
                try await eventually { relays.allSatisfy { $0.roomExists("arena") } }
                let alice = try RawClient(port: a.localAddress.port)
                _ = try await nats.afterNewSubscription { try alice.join("arena") }
                let bob = try RawClient(port: b.localAddress.port)
                let bobID = try bob.join("arena")
                #expect(try alice.receive() == .playerJoined(clientID: bobID))
                try b.removeRoom("arena")
                #expect(!b.roomExists("arena"))
                try await eventually { !a.roomExists("arena") }
                // Soft delete on both relays: members stay connected and are told on their next broadcast.
                try alice.send(.broadcast([1]))
                #expect(try alice.receive() == .error("room not found: arena"))
                try bob.send(.broadcast([1]))
                #expect(try bob.receive() == .error("room not found: arena"))
                #expect(throws: ServerError.roomNotFound("arena")) { try a.removeRoom("arena") }
                #expect(a.deleteRoom("arena") == false)
                // Created again (over the delete marker), it is a new room everywhere.
                try a.createRoom("arena")
                try await eventually { b.roomExists("arena") }
                let carol = try RawClient(port: b.localAddress.port)
                _ = try carol.join("arena")
                try alice.send(.broadcast([2]))
                #expect(try alice.receive() == .error("room not found: arena"))  // still in the old one
            }
        }

        @Test func roomMetadataIsTheSameOnEveryRelay() async throws {
            let nats = try NATSServerProcess.start(jetStream: true)
            defer { nats.stop() }
            try await withCluster(["a", "b"], over: [nats.clientURL], rooms: ["lobby"]) { relays in
                let (a, b) = (relays[0], relays[1])
                #expect(a.setRoomMeta("lobby", key: "map", value: "dust2"))
                #expect(a.roomMeta("lobby", key: "map") == "dust2")  // read your own write
                try await eventually { b.roomMeta("lobby", key: "map") == "dust2" }
                #expect(b.setRoomMeta("lobby", key: "map", value: "inferno"))
                #expect(b.setRoomMeta("lobby", key: "mode", value: "ctf"))
                try await eventually { a.roomMetaAll("lobby") == ["map": "inferno", "mode": "ctf"] }
                #expect(a.setRoomMeta("lobby", key: "mode", value: nil))
                try await eventually { b.roomMetaAll("lobby") == ["map": "inferno"] }
                // Any UTF-8 in keys and values.
                #expect(b.setRoomMeta("lobby", key: "名前 with.dots", value: "été"))
                try await eventually { a.roomMeta("lobby", key: "名前 with.dots") == "été" }
                #expect(!a.setRoomMeta("nowhere", key: "k", value: "v"))
                // A room created again does not inherit the old one's metadata.
                try a.removeRoom("lobby")
                try a.createRoom("lobby")
                try await eventually { b.roomExists("lobby") && b.roomMetaAll("lobby") == [:] }
                #expect(a.roomMetaAll("lobby") == [:])
            }
        }

        @Test func countsAreClusterWideForRoomsWithNoMemberHere() async throws {
            let nats = try NATSServerProcess.start(jetStream: true)
            defer { nats.stop() }
            try await withCluster(["a", "b"], over: [nats.clientURL], rooms: ["lobby", "arena"]) { relays in
                let (a, b) = (relays[0], relays[1])
                let alice = try RawClient(port: a.localAddress.port)
                let aliceID = try alice.join("arena")
                let dave = try RawClient(port: a.localAddress.port)
                let daveID = try dave.join("arena")
                try await eventually { a.roomClients("arena")?.count == 2 }
                // b has nobody in arena: it asks a.
                #expect(b.roomClients("arena").map(Set.init) == [aliceID, daveID])
                #expect(b.roomClientCount("arena") == 2)
                #expect(b.roomClientCounts == ["lobby": 0, "arena": 2])
                // And with a member on b too, both relays count all three.
                let bob = try RawClient(port: b.localAddress.port)
                let bobID = try bob.join("arena")
                try await eventually { a.roomClients("arena").map(Set.init) == [aliceID, daveID, bobID] }
                try await eventually { b.roomClients("arena").map(Set.init) == [aliceID, daveID, bobID] }
                #expect(a.roomClientCounts["arena"] == 3)
            }
        }

        @Test func aServerBroadcastReachesMembersOnRelaysWhereTheRoomHasThem() async throws {
            let nats = try NATSServerProcess.start(jetStream: true)
            defer { nats.stop() }
            try await withCluster(["a", "b"], over: [nats.clientURL], rooms: ["lobby"]) { relays in
                // Nobody in lobby on a: its broadcast still reaches Bob on b.
                let bob = try RawClient(port: relays[1].localAddress.port)
                _ = try await nats.afterNewSubscription { try bob.join("lobby") }
                try relays[0].broadcast(roomID: "lobby", data: [4, 2])
                #expect(try bob.receive() == .broadcast(senderID: ServerHandle.serverID, data: [4, 2]))
            }
        }

        @Test func maxClientsPerRoomCountsTheMembersOnOtherRelays() async throws {
            let nats = try NATSServerProcess.start(jetStream: true)
            defer { nats.stop() }
            try await withCluster(["a", "b"], over: [nats.clientURL], rooms: ["lobby"], server: { $0.maxClientsPerRoom(2) }) { relays in
                let alice = try RawClient(port: relays[0].localAddress.port)
                let aliceID = try await nats.afterNewSubscription { try alice.join("lobby") }
                let bob = try RawClient(port: relays[1].localAddress.port)
                let bobID = try bob.join("lobby")
                try await eventually { relays.allSatisfy { $0.roomClients("lobby").map(Set.init) == [aliceID, bobID] } }
                // Full cluster-wide: refused on either relay.
                for relay in relays {
                    let carol = try RawClient(port: relay.localAddress.port)
                    try carol.send(.joinRoom("lobby"))
                    #expect(try carol.receive() == .error("room full: lobby"))
                }
            }
        }

        @Test func theControlProtocolSpeaksForTheWholeCluster() async throws {
            let nats = try NATSServerProcess.start(jetStream: true)
            defer { nats.stop() }
            try await withCluster(["a", "b"], over: [nats.clientURL], rooms: ["lobby"]) { relays in
                let (a, b) = (ControlProtocol(handle: relays[0], startedAt: .now), ControlProtocol(handle: relays[1], startedAt: .now))
                let alice = try RawClient(port: relays[0].localAddress.port)
                let aliceID = try alice.join("lobby")
                #expect(b.execute("LIST_ROOMS") == "OK\nlobby: 1 clients\n")
                #expect(b.execute("ROOM_CLIENTS\nlobby") == "OK\nClients in 'lobby':\n\(aliceID.uuidString.lowercased())\n")
                #expect(a.execute("CREATE_ROOM\narena") == "OK\nRoom 'arena' created")
                #expect(b.execute("CREATE_ROOM\narena") == "ERROR\nRoom 'arena' already exists")
                #expect(b.execute("ROOM_META_SET\narena\nmap\ndust2") == "OK\nRoom 'arena' key 'map' set")
                try await eventually { a.execute("ROOM_META_GET\narena\nmap") == "OK\ndust2" }
                #expect(b.execute("DELETE_ROOM\narena") == "OK\nRoom 'arena' deleted")
                try await eventually { a.execute("LIST_ROOMS") == "OK\nlobby: 1 clients\n" }
                #expect(a.execute("NODES") == "OK\na: 1 members\nb: 0 members\nregistry: up\n")
                nats.stop()
                try await eventually { relays[0].clusterRegistryReady == false }
                #expect(a.execute("NODES").hasSuffix("registry: down (the NATS server closed the connection)\n"))
            }
        }

        @Test func aRelayThatJoinsLaterFindsTheRoomsAndTheirMetadata() async throws {
            let nats = try NATSServerProcess.start(jetStream: true)
            defer { nats.stop() }
            try await withCluster(["a"], over: [nats.clientURL], rooms: ["lobby"]) { relays in
                try relays[0].createRoom("arena")
                #expect(relays[0].setRoomMeta("arena", key: "map", value: "dust2"))
                try relays[0].createRoom("gone")
                try relays[0].removeRoom("gone")
                let late = try await ShardedServer.builder().bind("127.0.0.1:0").workers(1)
                    .cluster(servers: [nats.clientURL], node: "c").build().run()
                // Known before run() returned: no waiting.
                #expect(late.roomIDs == ["arena", "lobby"])
                #expect(late.roomMeta("arena", key: "map") == "dust2")
                #expect(try late.ensureRoom("lobby") == false)
                #expect(throws: Never.self) { try late.createRoom("gone") }  // deleted rooms can be made again
                await late.shutdown()
            }
        }

        @Test func withoutTheRegistryTheRelayDoesNotStartAndSaysWhy() async throws {
            // No JetStream on the server.
            let nats = try NATSServerProcess.start()
            defer { nats.stop() }
            var cluster = ClusterConfiguration(servers: [nats.clientURL], nodeName: "a")
            cluster.startupTimeout = .milliseconds(1500)
            let noJetStream = await #expect(throws: ServerError.self) {
                _ = try await ShardedServer.builder().bind("127.0.0.1:0").workers(1).cluster(cluster).build().run()
            }
            #expect(noJetStream?.description.contains("JetStream") == true, "\(String(describing: noJetStream))")
            // No NATS server at all.
            let port = try NATSServerProcess.freePorts(1)[0]
            cluster.servers = ["nats://127.0.0.1:\(port)"]
            let started = ContinuousClock.now
            let noServer = await #expect(throws: ServerError.self) {
                _ = try await ShardedServer.builder().bind("127.0.0.1:0").workers(1).cluster(cluster).build().run()
            }
            #expect(noServer?.description.contains("127.0.0.1:\(port)") == true, "\(String(describing: noServer))")
            #expect(ContinuousClock.now - started < .seconds(5))
            // Without the registry, a cluster needs no JetStream.
            cluster.servers = [nats.clientURL]
            cluster.roomRegistry = false
            let handle = try await ShardedServer.builder().bind("127.0.0.1:0").workers(1).cluster(cluster).build().run()
            try handle.createRoom("lobby")
            await handle.shutdown()
        }

        @Test func whileNATSIsDownRoomChangesFailClearlyAndMembersCarryOn() async throws {
            let nats = try NATSServerProcess.start(jetStream: true)
            defer { nats.stop() }
            try await withCluster(["a", "b"], over: [nats.clientURL], rooms: ["lobby"], configure: { $0.registryTimeout = .milliseconds(500) }) { relays in
                let (a, b) = (relays[0], relays[1])
                let alice = try RawClient(port: a.localAddress.port)
                _ = try alice.join("lobby")
                nats.stop()
                try await eventually { relays.allSatisfy { $0.clusterLinksUp == 0 } }
                let refused = #expect(throws: ServerError.self) { try a.createRoom("arena") }
                #expect(refused?.description.hasPrefix("cluster registry unavailable") == true, "\(String(describing: refused))")
                #expect(!a.setRoomMeta("lobby", key: "k", value: "v"))
                // Local rooms still work.
                let dave = try RawClient(port: a.localAddress.port)
                let daveID = try dave.join("lobby")
                #expect(try alice.receive() == .playerJoined(clientID: daveID))
                try nats.start()
                // The store survived the restart: the registry reloads and serves again.
                try await eventually(timeout: .seconds(15)) { (try? a.createRoom("arena")) != nil }
                try await eventually { b.roomExists("arena") && b.roomExists("lobby") }
            }
        }
    }
}

@Suite struct RegistryCodecTests {
    @Test func keysRoundTripForAnyRoomIDAndMetadataKey() {
        let keys: [RegistryKey] = [
            .room("lobby"), .room(""), .room("é.*> \u{0}"),
            .metadata(roomID: "lobby", roomRevision: 42, key: "map"),
            .metadata(roomID: "", roomRevision: 1, key: ""),
            .metadata(roomID: "a.b", roomRevision: UInt64.max, key: "名前 with.dots"),
        ]
        for key in keys {
            #expect(KVBucketConfiguration.isValidKey(key.kvKey), "\(key.kvKey)")
            #expect(RegistryKey(kvKey: key.kvKey) == key)
        }
        #expect(RegistryKey.room("lobby").kvKey == "r.6c6f626279")
        #expect(RegistryKey.metadata(roomID: "lobby", roomRevision: 7, key: "map").kvKey == "m.6c6f626279.7.6d6170")
        for junk in ["x.6c", "r", "r.6C", "r.6c6f.1", "m.6c.x.6d", "m.6c.1", "r.zz"] {
            #expect(RegistryKey(kvKey: junk) == nil, "\(junk)")
        }
    }

    @Test func memberListsRoundTripAndRejectShortBodies() {
        let first = UUID()
        let second = UUID()
        var bytes: [UInt8] = []
        ClusterEnvelope.writeMemberLists([("lobby", [first, second]), ("", [])], into: &bytes)
        let lists = bytes.withUnsafeBytes { ClusterEnvelope.memberLists(in: $0) }
        #expect(lists?.map(\.0) == ["lobby", ""])
        #expect(lists?.map(\.1) == [[first, second], []])
        for cut in 0..<bytes.count {
            let partial = Array(bytes[0..<cut])
            #expect(partial.withUnsafeBytes { ClusterEnvelope.memberLists(in: $0) } == nil, "cut at \(cut)")
        }
    }
}
