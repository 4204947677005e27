import Glibc
import Testing
@testable import GhostSync

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

extension Relay {
    /// The NATS protocol layer against a real nats-server (started by each test on free ports,
    /// stopped by PID whatever happens), through `NATSTestClient`, a blocking client built only
    /// on `NATSParser` and `NATSCommand`: the handshake, pings both ways, pub/sub with and without
    /// headers across connections, echo suppression, no-responders, subject errors, server
    /// limits, the JetStream KV registry operations and a watch, a 3-node cluster, and interop
    /// with nats-py.
    @Suite(.timeLimit(.minutes(3))) struct NATSServerTests {
        static let room = try! ClusterSubjects().room("lobby")

        @Test func handshake() throws {
            let server = try NATSServerProcess.start()
            defer { server.stop() }
            let client = try NATSTestClient(port: server.port, name: "relay-n1")
            #expect(!client.info.serverID.isEmpty)
            #expect(client.info.serverName == "test")
            #expect(client.info.version?.hasPrefix("2.") == true)
            #expect(client.info.proto == 1)
            #expect(client.info.headers == true)
            #expect(client.info.maxPayload == 1_048_576)
            #expect(client.info.clientID != nil)
            #expect(client.info.jetStream != true)
            try client.flush()
            #expect(client.errors.isEmpty)
            // The server knows us by the name CONNECT gave and the language it claimed.
            let connz = String(decoding: try server.monitor("/connz"), as: UTF8.self)
            #expect(connz.contains("\"name\": \"relay-n1\""))
            #expect(connz.contains("\"lang\": \"swift\""))
        }

        @Test func serverPingsAreAnsweredAndSilentClientsAreDroppedAsStale() throws {
            let server = try NATSServerProcess.start(configuration: "ping_interval: \"200ms\"\nping_max: 2")
            defer { server.stop() }
            let answering = try NATSTestClient(port: server.port)
            let silent = try NATSTestClient(port: server.port)
            silent.answersPings = false
            // Both read; only one answers. Two unanswered PINGs, then the server gives up on it.
            let deadline = ContinuousClock.now + .seconds(5)
            while !silent.closed, ContinuousClock.now < deadline {
                try silent.read(for: .milliseconds(20))
                try answering.read(for: .milliseconds(20))
            }
            #expect(silent.closed)
            #expect(silent.errors == ["Stale Connection"])
            // Meanwhile the answering client was pinged too, and is still connected.
            #expect(answering.pingsAnswered >= 2)
            try answering.flush()
            #expect(answering.errors.isEmpty)
        }

        @Test func publishAndReceiveAcrossConnections() throws {
            let server = try NATSServerProcess.start()
            defer { server.stop() }
            let publisher = try NATSTestClient(port: server.port)
            let subscriber = try NATSTestClient(port: server.port)
            try subscriber.subscribe(Self.room, sid: 1)
            try subscriber.subscribe("ghost.room.*", sid: 2)
            try subscriber.flush()

            let binary: [UInt8] = Array("MSG fake 1 2\r\n".utf8) + [0, 255, 13, 10, 13]
            let large = (0..<200_000).map { UInt8(truncatingIfNeeded: $0 &* 7) }
            let headers: [(name: String, value: String)] = [("Relay-Node", "n1"), ("X-Seq", "1"), ("X-Seq", "2"), ("Empty", "")]
            try publisher.publish(Self.room, [])
            try publisher.publish(Self.room, binary)
            try publisher.publish(Self.room, large)
            try publisher.publish(Self.room, headers: headers, Array("with headers".utf8))
            try publisher.publish(Self.room, headers: [], [])
            try publisher.publish(Self.room, replyTo: "_INBOX.n1.7", Array("ask".utf8))
            try publisher.flush()

            let expected: [NATSReceivedMessage] = [
                .init(subject: Self.room, sid: 0, payload: []),
                .init(subject: Self.room, sid: 0, payload: binary),
                .init(subject: Self.room, sid: 0, payload: large),
                .init(subject: Self.room, sid: 0, headers: headers.map { NATSHeader($0.name, $0.value) }, payload: Array("with headers".utf8)),
                .init(subject: Self.room, sid: 0, headers: [], payload: []),
                .init(subject: Self.room, sid: 0, replyTo: "_INBOX.n1.7", payload: Array("ask".utf8)),
            ]
            var bySID: [UInt64: [NATSReceivedMessage]] = [1: [], 2: []]
            for _ in 0..<(2 * expected.count) {
                let message = try subscriber.nextMessage()
                bySID[message.sid, default: []].append(message)
            }
            for sid: UInt64 in [1, 2] {
                let received = bySID[sid] ?? []
                #expect(received.count == expected.count)
                for (got, want) in zip(received, expected) {
                    var want = want
                    want.sid = sid
                    #expect(got == want)
                }
            }
            try subscriber.flush()
            #expect(subscriber.takeMessages().isEmpty)
            #expect(publisher.errors.isEmpty && subscriber.errors.isEmpty)
        }

        @Test func echoOffSuppressesOwnPublishesOnly() throws {
            let server = try NATSServerProcess.start()
            defer { server.stop() }
            let quiet = try NATSTestClient(port: server.port, echo: false)
            let other = try NATSTestClient(port: server.port, echo: false)
            let echoing = try NATSTestClient(port: server.port, echo: true)
            for client in [quiet, other, echoing] {
                try client.subscribe(Self.room, sid: 1)
                try client.flush()
            }
            try quiet.publish(Self.room, Array("from quiet".utf8))
            // The server queues a delivery to the publisher before the PONG of a later PING, so
            // after the flush an echo would already be here.
            try quiet.flush()
            #expect(quiet.takeMessages().isEmpty)
            #expect(try other.nextMessage().payload == Array("from quiet".utf8))
            #expect(try echoing.nextMessage().payload == Array("from quiet".utf8))
            // The flag is what suppresses it: an echo:true connection gets its own message back.
            try echoing.publish(Self.room, Array("from echoing".utf8))
            try echoing.flush()
            #expect(echoing.takeMessages().map(\.payload) == [Array("from echoing".utf8)])
            #expect(try quiet.nextMessage().payload == Array("from echoing".utf8))
        }

        @Test func requestsGetNoRespondersAtOnceOrTheReply() throws {
            let server = try NATSServerProcess.start()
            defer { server.stop() }
            let requester = try NATSTestClient(port: server.port)
            // Nobody serves the subject: an immediate 503 status message, empty.
            let refused = try requester.request("nobody.home", Array("anyone?".utf8))
            #expect(refused.status == 503)
            #expect(refused.headers == [])
            #expect(refused.payload.isEmpty)
            // A responder answers through the reply subject.
            let responder = try NATSTestClient(port: server.port)
            try responder.subscribe("svc.echo", sid: 3)
            try responder.flush()
            let inbox = requester.newInbox()
            try requester.subscribe(inbox, sid: 9)
            try requester.publish("svc.echo", replyTo: inbox, Array("ping".utf8))
            let request = try responder.nextMessage()
            #expect(request.replyTo == inbox)
            try responder.publish(try #require(request.replyTo), headers: [("Relay-Node", "n2")], request.payload + Array("-pong".utf8))
            let reply = try requester.nextMessage { $0.sid == 9 }
            #expect(reply.payload == Array("ping-pong".utf8))
            #expect(reply.status == nil)
            #expect(reply.headers == [NATSHeader("Relay-Node", "n2")])
            // Without no_responders, nothing comes back (checked with a flush: the 503 would be
            // queued before the PONG).
            let plain = try NATSTestClient(port: server.port, noResponders: false)
            let plainInbox = plain.newInbox()
            try plain.subscribe(plainInbox)
            try plain.publish("nobody.home", replyTo: plainInbox)
            try plain.flush()
            #expect(plain.takeMessages().isEmpty)
        }

        @Test func subjectErrorsAndWhyTheEncodersRefuseBadSubjects() throws {
            let server = try NATSServerProcess.start()
            defer { server.stop() }
            let client = try NATSTestClient(port: server.port)
            // The encoders refuse what the server would reject or misread.
            #expect(throws: NATSProtocolError.self) { try client.subscribe("foo..") }
            #expect(throws: NATSProtocolError.self) { try client.publish("bad subject", Array("x".utf8)) }
            // Sent raw, SUB foo.. earns -ERR 'Invalid Subject' and the connection stays usable.
            try client.write(Array("SUB foo.. 5\r\n".utf8))
            #expect(try client.nextError() == "Invalid Subject")
            try client.flush()
            // PUB foo.. is accepted without a word (no -ERR, no delivery).
            try client.write(Array("PUB foo.. 1\r\nx\r\n".utf8))
            try client.flush()
            #expect(client.errors == ["Invalid Subject"])
            // PUB with a space is silently misread: subject "bad", reply-to "subject".
            let listener = try NATSTestClient(port: server.port)
            try listener.subscribe("bad", sid: 4)
            try listener.flush()
            try client.write(Array("PUB bad subject 1\r\nx\r\n".utf8))
            try client.flush()
            #expect(try listener.nextMessage() == NATSReceivedMessage(subject: "bad", sid: 4, replyTo: "subject", payload: Array("x".utf8)))
            #expect(!client.closed)
        }

        @Test func serverLimitsCloseTheConnection() throws {
            let server = try NATSServerProcess.start(configuration: "max_payload: 1024")
            defer { server.stop() }
            // INFO announces the limit; the parser takes it as its payload cap.
            let client = try NATSTestClient(port: server.port)
            #expect(client.info.maxPayload == 1024)
            try client.publish("ok", Array(repeating: 1, count: 1024))
            try client.flush()
            try client.publish("too.big", Array(repeating: 1, count: 1025))
            #expect(try client.waitForClose(timeout: .seconds(5)))
            #expect(client.errors == ["Maximum Payload Violation"])
            // A control line over 4096 bytes (max_control_line) ends the connection too.
            let long = try NATSTestClient(port: server.port)
            try long.write(Array(("SUB " + String(repeating: "a", count: 5000) + " 1\r\n").utf8))
            #expect(try long.waitForClose(timeout: .seconds(5)))
            #expect(long.errors == ["maximum control line exceeded"])
        }

        // MARK: JetStream KV

        /// A JSON API request; the reply message.
        static func api(_ client: NATSTestClient, _ subject: String, _ body: [UInt8]) throws -> NATSReceivedMessage {
            try client.request(subject, body)
        }

        /// Runs `body` on the `NATSMessage` form of an owned reply (the decoders read messages).
        static func decode<T>(_ message: NATSReceivedMessage, _ body: (NATSMessage) -> T) -> T {
            message.subject.utf8CString.withUnsafeBytes { subject in
                message.payload.withUnsafeBytes { payload in
                    (message.replyTo ?? "").utf8CString.withUnsafeBytes { reply in
                        var block: [UInt8] = []
                        if let headers = message.headers {
                            let status = message.status.map { " \($0)" + (message.statusDescription.map { " " + $0 } ?? "") } ?? ""
                            block = Array("NATS/1.0\(status)\r\n".utf8)
                            for header in headers { block += Array("\(header.name): \(header.value)\r\n".utf8) }
                            block += [13, 10]
                        }
                        return block.withUnsafeBytes { block in
                            body(NATSMessage(
                                subjectBytes: UnsafeRawBufferPointer(rebasing: subject.dropLast()),
                                sid: message.sid,
                                replyToBytes: message.replyTo == nil ? nil : UnsafeRawBufferPointer(rebasing: reply.dropLast()),
                                headerBytes: message.headers == nil ? nil : block,
                                status: message.status,
                                payload: payload
                            ))
                        }
                    }
                }
            }
        }

        static func createBucket(_ client: NATSTestClient, _ bucket: KVBucketConfiguration) throws -> JetStreamStreamInfo {
            let reply = try api(client, bucket.streamCreateSubject, bucket.streamCreateRequest())
            return try decode(reply) { JetStreamResponse.stream($0) }.get()
        }

        /// A put with `headers` to `key`; the PubAck or the refusal.
        static func put(_ client: NATSTestClient, _ bucket: KVBucketConfiguration, _ key: String, _ value: String, headers: [(name: String, value: String)] = []) throws -> Result<JetStreamPubAck, JetStreamError> {
            let reply = try client.request(try bucket.subject(forKey: key), headers: headers.isEmpty ? nil : headers, Array(value.utf8))
            return decode(reply) { JetStreamResponse.pubAck($0) }
        }

        static func get(_ client: NATSTestClient, _ bucket: KVBucketConfiguration, _ key: String) throws -> KVEntry? {
            let reply = try client.request(try bucket.directGetSubject(forKey: key))
            return decode(reply) { KVEntry($0, bucket: bucket) }
        }

        @Test func kvBucketCreateIsIdempotentAndRefusesAnotherConfiguration() throws {
            let server = try NATSServerProcess.start(jetStream: true)
            defer { server.stop() }
            let client = try NATSTestClient(port: server.port)
            #expect(client.info.jetStream == true)
            let bucket = try KVBucketConfiguration(bucket: try ClusterSubjects().roomBucket)
            let created = try Self.createBucket(client, bucket)
            #expect(created.config.name == "KV_ghost_rooms")
            #expect(created.config.subjects == ["$KV.ghost_rooms.>"])
            #expect(created.config.maxMessagesPerSubject == 1)
            #expect(try Self.createBucket(client, bucket).config.name == "KV_ghost_rooms")
            var other = bucket
            other.history = 2
            #expect(throws: JetStreamError.api(JetStreamAPIError(code: 400, errorCode: JetStreamAPIError.streamNameInUse, text: "stream name already in use with a different configuration"))) {
                _ = try Self.createBucket(client, other)
            }
            // A put to a bucket that does not exist: no stream takes the subject, so no responders.
            let missing = try KVBucketConfiguration(bucket: "missing")
            #expect(try Self.put(client, missing, "6c", "v") == .failure(.noResponders))
        }

        @Test func kvCreateIfAbsentDeleteAndRecreate() throws {
            let server = try NATSServerProcess.start(jetStream: true)
            defer { server.stop() }
            let client = try NATSTestClient(port: server.port)
            let bucket = try KVBucketConfiguration(bucket: "rooms")
            _ = try Self.createBucket(client, bucket)
            let key = NATSSubject.token(forRoom: "lobby")

            // Create if absent: the first wins, the second is refused with the key's revision.
            #expect(try Self.put(client, bucket, key, "n1", headers: KVBucketConfiguration.createHeaders) == .success(JetStreamPubAck(stream: "KV_rooms", sequence: 1)))
            #expect(try Self.put(client, bucket, key, "n2", headers: KVBucketConfiguration.createHeaders)
                == .failure(.api(JetStreamAPIError(code: 400, errorCode: JetStreamAPIError.wrongLastSequence, text: "wrong last sequence: 1"))))
            #expect(try Self.get(client, bucket, key) == KVEntry(key: key, value: Array("n1".utf8), operation: .put, revision: 1))
            #expect(try Self.get(client, bucket, NATSSubject.token(forRoom: "nowhere")) == nil)  // 404 status

            // Delete: a marker with its own revision.
            #expect(try Self.put(client, bucket, key, "", headers: KVBucketConfiguration.deleteHeaders) == .success(JetStreamPubAck(stream: "KV_rooms", sequence: 2)))
            #expect(try Self.get(client, bucket, key) == KVEntry(key: key, value: [], operation: .delete, revision: 2))

            // Create if absent is refused over the marker too (expected last sequence 0, the key's
            // last is 2); an update expecting the marker's revision takes the room again.
            #expect(try Self.put(client, bucket, key, "n2", headers: KVBucketConfiguration.createHeaders)
                == .failure(.api(JetStreamAPIError(code: 400, errorCode: JetStreamAPIError.wrongLastSequence, text: "wrong last sequence: 2"))))
            #expect(try Self.put(client, bucket, key, "n2", headers: KVBucketConfiguration.updateHeaders(revision: 2)) == .success(JetStreamPubAck(stream: "KV_rooms", sequence: 3)))
            #expect(try Self.get(client, bucket, key)?.value == Array("n2".utf8))
            // A stale update loses.
            #expect(try Self.put(client, bucket, key, "n3", headers: KVBucketConfiguration.updateHeaders(revision: 2))
                == .failure(.api(JetStreamAPIError(code: 400, errorCode: JetStreamAPIError.wrongLastSequence, text: "wrong last sequence: 3"))))
            // Purge: a marker that also drops the history (here: one value kept anyway).
            #expect(try Self.put(client, bucket, key, "", headers: KVBucketConfiguration.purgeHeaders) == .success(JetStreamPubAck(stream: "KV_rooms", sequence: 4)))
            #expect(try Self.get(client, bucket, key)?.operation == .purge)
        }

        @Test func kvWatchSeesTheLatestEntriesThenPutsAndDeletes() throws {
            let server = try NATSServerProcess.start(jetStream: true)
            defer { server.stop() }
            let writer = try NATSTestClient(port: server.port)
            let watcher = try NATSTestClient(port: server.port)
            let bucket = try KVBucketConfiguration(bucket: "rooms")
            _ = try Self.createBucket(writer, bucket)
            let (lobby, duel, arena) = (NATSSubject.token(forRoom: "lobby"), NATSSubject.token(forRoom: "duel"), NATSSubject.token(forRoom: "arena"))
            _ = try Self.put(writer, bucket, lobby, "n1").get()
            _ = try Self.put(writer, bucket, duel, "n1").get()
            _ = try Self.put(writer, bucket, lobby, "n2").get()  // revision 3 replaces revision 1

            // SUB the deliver subject first, then create the consumer.
            var watch = try KVWatchConfiguration(bucket: bucket, deliverSubject: watcher.newInbox())
            watch.idleHeartbeat = .milliseconds(200)
            let sid = try watcher.subscribe(watch.deliverSubject)
            let created = try Self.decode(try watcher.request(bucket.consumerCreateSubject, watch.consumerCreateRequest())) { JetStreamResponse.consumer($0) }.get()
            #expect(created.streamName == "KV_rooms")
            #expect(created.pending == 2)

            /// The next entry on the watch, answering flow control and noting heartbeats.
            var heartbeats = 0
            func nextEntry() throws -> KVEntry {
                while true {
                    let message = try watcher.nextMessage { $0.sid == sid }
                    if let status = Self.decode(message, { JetStreamPushStatus($0) }) {
                        if case .idleHeartbeat = status { heartbeats += 1 }
                        if let answer = status.answerSubject { try watcher.publish(answer) }
                        continue
                    }
                    return try #require(Self.decode(message) { KVEntry($0, bucket: bucket) })
                }
            }

            // The latest entry of each key, in stream order, counting down to caught up.
            let first = try nextEntry()
            #expect(first.key == duel && first.value == Array("n1".utf8) && first.operation == .put && first.revision == 2 && first.pending == 1)
            let second = try nextEntry()
            #expect(second.key == lobby && second.value == Array("n2".utf8) && second.revision == 3 && second.pending == 0)
            #expect(second.timestamp ?? 0 > 1_700_000_000_000_000_000)

            // Then every change, with the revision its PubAck gave.
            let put = try Self.put(writer, bucket, arena, "n3", headers: KVBucketConfiguration.createHeaders).get()
            let arenaEntry = try nextEntry()
            #expect(arenaEntry.key == arena && arenaEntry.operation == .put && arenaEntry.revision == put.sequence)
            let delete = try Self.put(writer, bucket, duel, "", headers: KVBucketConfiguration.deleteHeaders).get()
            let deleted = try nextEntry()
            #expect(deleted == KVEntry(key: duel, value: [], operation: .delete, revision: delete.sequence, pending: 0, timestamp: deleted.timestamp))
            #expect(NATSSubject.roomID(fromToken: deleted.key) == "duel")

            // Idle: heartbeats, status 100 without a reply subject, carrying the last sequences
            // (one sent before the delete carries older ones).
            var latest: JetStreamPushStatus?
            while latest == nil {
                let message = try watcher.nextMessage(timeout: .seconds(5)) { $0.sid == sid }
                let status = try #require(Self.decode(message) { JetStreamPushStatus($0) })
                if case .idleHeartbeat(_, 4?, _) = status { latest = status }
            }
            #expect(latest == .idleHeartbeat(stalledReply: nil, lastConsumerSequence: 4, lastStreamSequence: delete.sequence))
        }

        @Test func kvWatchOfManyLargeValuesNeedsFlowControlAnswers() throws {
            let server = try NATSServerProcess.start(jetStream: true)
            defer { server.stop() }
            let writer = try NATSTestClient(port: server.port)
            let watcher = try NATSTestClient(port: server.port)
            let bucket = try KVBucketConfiguration(bucket: "big", storage: .memory)
            _ = try Self.createBucket(writer, bucket)
            let value = Array(repeating: UInt8(ascii: "v"), count: 60_000)
            let count = 300
            for index in 0..<count { try writer.publish(try bucket.subject(forKey: "k\(index)"), value) }
            try writer.flush()

            let watch = try KVWatchConfiguration(bucket: bucket, deliverSubject: watcher.newInbox())
            let sid = try watcher.subscribe(watch.deliverSubject)
            try watcher.publish(bucket.consumerCreateSubject, replyTo: watcher.newInbox(), watch.consumerCreateRequest())
            var entries = 0
            var flowControlRequests = 0
            while entries < count {
                let message = try watcher.nextMessage(timeout: .seconds(10)) { $0.sid == sid }
                if let status = Self.decode(message, { JetStreamPushStatus($0) }) {
                    if case .flowControl(let reply) = status {
                        flowControlRequests += 1
                        #expect(reply.hasPrefix("$JS.FC.KV_big."))
                    }
                    if let answer = status.answerSubject { try watcher.publish(answer) }
                    continue
                }
                let entry = try #require(Self.decode(message) { KVEntry($0, bucket: bucket) })
                #expect(entry.value.count == value.count)
                entries += 1
            }
            #expect(flowControlRequests > 0)
        }

        // MARK: Cluster

        /// Publishes from `publisher` until `subscriber` (on another server, subscribed to
        /// `subject` with `sid`) receives it: interest reaches other servers asynchronously.
        static func deliverAcross(_ publisher: NATSTestClient, _ subscriber: NATSTestClient, subject: String, sid: UInt64, node: String) throws -> NATSReceivedMessage? {
            let deadline = ContinuousClock.now + .seconds(10)
            while ContinuousClock.now < deadline {
                try publisher.publish(subject, headers: [("Relay-Node", node)], Array("across".utf8))
                try publisher.flush()
                if let message = try? subscriber.nextMessage(timeout: .milliseconds(200), where: { $0.sid == sid }) { return message }
            }
            return nil
        }

        /// A put that retries while it gets no responders (503): just after an R3 stream is created,
        /// or while its leader is being replaced, a server may have no interest for its subjects
        /// yet (observed: the first put through another server right after the create).
        static func putRetryingNoResponders(_ client: NATSTestClient, _ bucket: KVBucketConfiguration, _ key: String, _ value: String, headers: [(name: String, value: String)]) throws -> Result<JetStreamPubAck, JetStreamError> {
            let deadline = ContinuousClock.now + .seconds(15)
            var outcome = try put(client, bucket, key, value, headers: headers)
            while outcome == .failure(.noResponders), ContinuousClock.now < deadline {
                try client.read(for: .milliseconds(50))
                outcome = try put(client, bucket, key, value, headers: headers)
            }
            return outcome
        }

        @Test func threeNodeClusterRoutesMessagesReplicatesTheRegistryAndSurvivesARestart() throws {
            let cluster = try NATSCluster.start(size: 3, jetStream: true)
            defer { cluster.stop() }
            var clients = try cluster.servers.map { try NATSTestClient(port: $0.port, name: "relay-\($0.name)") }
            #expect(clients[0].info.cluster == "relay")
            // connect_urls lists every server's client address, its own included.
            #expect(Set(clients[0].info.connectURLs ?? []) == Set(cluster.servers.map(\.clientAddress)))
            try clients[2].subscribe(Self.room, sid: 1)
            try clients[2].flush()
            let delivered = try Self.deliverAcross(clients[0], clients[2], subject: Self.room, sid: 1, node: "n1")
            #expect(delivered?.payload == Array("across".utf8))
            #expect(delivered?.headers == [NATSHeader("Relay-Node", "n1")])

            // The registry bucket replicated on all three; written on one, refused on another.
            let bucket = try KVBucketConfiguration(bucket: "rooms", replicas: 3)
            let created = try Self.createBucket(clients[1], bucket)
            #expect(created.config.replicas == 3)
            let key = NATSSubject.token(forRoom: "lobby")
            #expect(try Self.putRetryingNoResponders(clients[0], bucket, key, "n1", headers: KVBucketConfiguration.createHeaders).get().sequence == 1)
            #expect(try Self.putRetryingNoResponders(clients[2], bucket, key, "n3", headers: KVBucketConfiguration.createHeaders)
                == .failure(.api(JetStreamAPIError(code: 400, errorCode: JetStreamAPIError.wrongLastSequence, text: "wrong last sequence: 1"))))

            // n3 stops (by PID) and comes back on the same ports and store; the cluster re-forms.
            cluster.servers[2].stop()
            #expect(try clients[2].waitForClose(timeout: .seconds(5)))
            try cluster.waitUntilFormed()
            // Two of three still make a quorum for the R3 bucket.
            #expect(try Self.putRetryingNoResponders(clients[0], bucket, NATSSubject.token(forRoom: "duel"), "n1", headers: KVBucketConfiguration.createHeaders).get().sequence == 2)
            try cluster.servers[2].start()
            try cluster.waitUntilFormed()
            clients[2] = try NATSTestClient(port: cluster.servers[2].port, name: "relay-n3")
            try clients[0].subscribe(Self.room, sid: 2)
            try clients[0].flush()
            #expect(try Self.deliverAcross(clients[2], clients[0], subject: Self.room, sid: 2, node: "n3")?.headers == [NATSHeader("Relay-Node", "n3")])
        }

        // MARK: Interop

        @Test(.enabled(if: NATSInterop.isAvailable, "nats-py could not be installed with pip into .build/nats-venv (no PyPI?)"))
        func interopWithNatsPy() throws {
            let python = try NATSInterop.python.get()
            let server = try NATSServerProcess.start()
            defer { server.stop() }
            let client = try NATSTestClient(port: server.port)
            try client.subscribe("interop.to-swift", sid: 1)
            try client.flush()
            let fromPython = 12
            let toPython = 10
            let peer = try Subprocess(python, [NATSInterop.script, "\(server.port)", "\(fromPython)", "\(toPython)"], absolute: python)
            defer { peer.signal(SIGKILL) }
            #expect(try peer.readLine() == "READY")
            #expect(try peer.readLine() == "PUBLISHED")

            // nats-py's messages, byte for byte, headers in the order it sent them.
            for index in 0..<fromPython {
                let message = try client.nextMessage()
                let payload = NATSInterop.payload(index)
                #expect(message.subject == "interop.to-swift")
                #expect(message.payload == payload, "payload \(index)")
                #expect(message.replyTo == (index % 2 == 1 ? "interop.reply.\(index)" : nil))
                #expect(message.headers == [NATSHeader("Seq", "\(index)"), NATSHeader("Origin", "python"), NATSHeader("Len", "\(payload.count)")])
            }

            // Ours, checked by nats-py: PUB and HPUB alternately.
            for index in 0..<toPython {
                if index % 2 == 0 {
                    try client.publish("interop.to-py", NATSInterop.payload(index))
                } else {
                    try client.publish("interop.to-py", replyTo: "interop.back.\(index)", headers: [("Seq", "\(index)")], NATSInterop.payload(index))
                }
            }
            try client.flush()
            for index in 0..<toPython {
                let line = try peer.readLine()
                let reply = index % 2 == 0 ? "-" : "interop.back.\(index)"
                let seq = index % 2 == 0 ? "-" : "\(index)"
                #expect(line == "GOT \(index) interop.to-py \(NATSInterop.payload(index).count) ok \(seq) \(reply)")
            }
            #expect(try peer.readLine() == "DONE")
            #expect(try peer.wait() == 0)
        }
    }
}
