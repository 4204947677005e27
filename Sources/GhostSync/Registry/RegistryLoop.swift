import CGhostSyncShims
import Glibc

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The registry thread (docs/cluster.md, "Rooms are cluster-wide"): one NATS connection on its
/// own epoll loop that
///
/// 1. creates the bucket if needed (`$JS.API.STREAM.CREATE`, idempotent),
/// 2. watches every key (an ephemeral push consumer, last value per key, then every change),
///    applying each entry to the server's room directory — rooms appear and are deleted, string
///    metadata changes — and, once the first snapshot is in, tells `run()` the server may start,
/// 3. carries out callers' requests with conditional writes (create only if absent, delete only
///    the incarnation the caller knows), applying each acknowledged write at once so the caller
///    reads its own write, and
/// 4. answers other relays' member queries and asks them for counts of rooms with no member here.
///
/// Every change to the directory in a cluster happens on this thread, so the watch and the
/// requests never race. A lost connection, a gap in the watch or a consumer that went silent
/// starts over from (1); the new snapshot is reconciled with what this relay knew.
///
/// Thread confinement: everything here belongs to the registry thread.
final class RegistryLoop {
    private let registry: RoomRegistry
    private let core: ServerCore
    private let link: ClusterLink
    private let epoll: Epoll
    private let bucket: KVBucketConfiguration
    private let subjects: ClusterSubjects
    private let membersSubject: String
    /// `_INBOX.<prefix>.<hex name>.<incarnation>.registry`; replies come to `.q.<token>`, the
    /// watch to `.w.<generation>`.
    private let inbox: String
    private static let linkToken: UInt64 = 1
    private static let wakeToken: UInt64 = 2
    /// How long a member query waits for the relays that have not answered yet.
    private static let membersGatherMilliseconds: Int64 = 500
    private static let watchHeartbeat: Duration = .seconds(1)

    private var now = MonotonicClock.nowMilliseconds()
    private let startedAt: Int64
    private var everLoaded = false
    private var startupReported = false

    private enum Phase: Equatable {
        /// Not connected, or waiting to retry the bucket or the watch.
        case idle
        case creatingBucket
        /// The watch is being created or is delivering its first snapshot.
        case loading
        case ready
    }

    private var phase = Phase.idle
    private var retryAt: Int64 = 0
    private var bucketRequestedAt: Int64 = 0
    private var watchRequestedAt: Int64 = 0
    private var watchConsumerAnswered = false
    /// How long a JetStream API request (bucket, watch) may go unanswered before it is sent again.
    private static let apiRetryMilliseconds: Int64 = 1000
    private var nextPingAt: Int64 = 0

    private enum Pending {
        case bucket
        case consumer(generation: UInt64)
        case create(RegistryRequest, roomID: String, attempt: Int)
        case createCheck(RegistryRequest, roomID: String, attempt: Int)
        case delete(RegistryRequest, roomID: String, revision: UInt64)
        case metadata(RegistryRequest)
        case members(MembersQuery)
    }

    private final class MembersQuery {
        let request: RegistryRequest
        let expected: Set<String>
        let gatherUntil: Int64
        var answered: Set<String> = []
        var members: [String: [UUID]] = [:]

        init(request: RegistryRequest, expected: Set<String>, gatherUntil: Int64) {
            self.request = request
            self.expected = expected
            self.gatherUntil = gatherUntil
        }
    }

    private var pending: [UInt64: Pending] = [:]
    private var readBuffer = [UInt8](repeating: 0, count: 64 << 10)
    private var nextToken: UInt64 = 1
    /// Requests that came while the registry was not ready; sent once it is (or answered at
    /// their deadline).
    private var waiting: [RegistryRequest] = []
    /// Requests to send again shortly (`retrySoon`).
    private var delayed: [(at: Int64, request: RegistryRequest)] = []

    private var repliesSubscription: UInt64?
    private var membersSubscription: UInt64?
    private var watchSubscription: UInt64?
    private var watchGeneration: UInt64 = 0
    private var watchConsumerSequence: UInt64 = 0
    private var watchHeardAt: Int64 = 0
    /// Keys seen in the snapshot being loaded, and the stream's last sequence when it began.
    private var snapshotKeys: Set<String> = []
    private var snapshotHighWater: UInt64 = 0

    /// What this relay knows of the bucket: the revision of each key's live value, and of each
    /// deleted key's marker (a create over a marker must name it).
    private var liveRevisions: [String: UInt64] = [:]
    private var deletedRevisions: [String: UInt64] = [:]

    init(registry: RoomRegistry, core: ServerCore, epoll: Epoll) {
        self.registry = registry
        self.core = core
        let configuration = registry.configuration
        let servers = configuration.servers.compactMap { try? ClusterConfiguration.address(of: $0) }
        link = ClusterLink(
            node: registry.node, servers: servers, maxPendingBytes: configuration.maxPendingBytes, role: "registry",
            epoll: epoll, token: Self.linkToken)
        self.epoll = epoll
        subjects = try! ClusterSubjects()  // the default prefix is valid
        // The bucket name is checked by `ClusterConfiguration.validated()`.
        var bucket = try! KVBucketConfiguration(bucket: configuration.registryBucket, replicas: configuration.registryReplicas)
        bucket.history = 1
        self.bucket = bucket
        membersSubject = subjects.membersQuery
        let base = (try? subjects.inbox(node: NATSSubject.token(forRoom: registry.node.name))) ?? "_INBOX.ghost"
        inbox = "\(base).\(String(registry.node.incarnation, radix: 16)).registry"
        startedAt = now
    }

    // MARK: Loop

    func run() {
        let capacity = 16
        let events = UnsafeMutablePointer<epoll_event>.allocate(capacity: capacity)
        defer {
            events.deallocate()
            shutDown()
        }
        try? epoll.add(registry.wake.fd, events: gs_EPOLLIN, token: Self.wakeToken)
        while !registry.isStopping {
            now = MonotonicClock.nowMilliseconds()
            tick()
            flush()
            let count = (try? Syscall.epollWait(epoll.fd, events, capacity: capacity, timeoutMilliseconds: 20)) ?? 0
            now = MonotonicClock.nowMilliseconds()
            for index in 0..<count {
                let event = events[index]
                if event.data.u64 == Self.wakeToken {
                    registry.wake.drain()
                } else {
                    linkEvent(event.events)
                }
            }
            for request in registry.takeRequests() { accept(request) }
            flush()
        }
    }

    private func shutDown() {
        fail(everything: "the server is shutting down")
        link.shutDown()
        epoll.close()
        registry.isReady.store(false, ordering: .releasing)
        if !startupReported {
            startupReported = true
            registry.finishedLoading(failure: "the server stopped before the registry loaded")
        }
    }

    /// Due work: (re)connect, PINGs, retries, deadlines, a silent watch.
    private func tick() {
        link.connectIfDue(now: now)
        if !startupReported, now - startedAt > registry.configuration.startupTimeout.wholeMilliseconds {
            startupReported = true
            let servers = registry.configuration.servers.joined(separator: ",")
            registry.finishedLoading(failure: "the room registry did not load from \(servers) within \(registry.configuration.startupTimeout): \(registry.lastError ?? "no NATS server answered")")
        }
        if link.isConnected {
            if now >= nextPingAt {
                nextPingAt = now + 1000
                if link.pingsOutstanding >= 2 {
                    lostLink("no PONG from the NATS server")
                    return
                }
                link.pingsOutstanding += 1
                link.enqueueControl { NATSCommand.ping(into: &$0) }
            }
            if phase == .idle, now >= retryAt { createBucket() }
            // JetStream may lose a request while it elects a leader (a server of its cluster
            // just died): ask again rather than wait for an answer that will not come. Both
            // requests are idempotent (an unused watch consumer is removed by the server).
            if phase == .creatingBucket, now - bucketRequestedAt > Self.apiRetryMilliseconds {
                restart("no answer to the bucket request")
            }
            if phase == .loading, !watchConsumerAnswered, now - watchRequestedAt > Self.apiRetryMilliseconds {
                restart("no answer to the watch request")
            }
            if phase == .ready || phase == .loading, watchSubscription != nil,
               now - watchHeardAt > 4 * Self.watchHeartbeat.wholeMilliseconds {
                restart("the watch went silent")
            }
        }
        expireRequests()
        if !delayed.isEmpty, phase == .ready {
            let due = delayed.filter { $0.at <= now }
            delayed.removeAll { $0.at <= now }
            for entry in due { accept(entry.request) }
        }
    }

    private func expireRequests() {
        let problem = registry.lastError ?? "NATS is slow or unreachable"
        let timeout = registry.configuration.registryTimeout
        waiting.removeAll { request in
            guard request.deadline <= now else { return false }
            request.answer(.unavailable("not connected to the registry within \(timeout) (\(problem)); nothing was changed"))
            return true
        }
        delayed.removeAll { entry in
            guard entry.request.deadline <= now else { return false }
            entry.request.answer(.unavailable("the registry's stream had no leader within \(timeout) (JetStream electing one); nothing was changed"))
            return true
        }
        // Sent, but unanswered: the write may still land (as with any request over a network).
        let why = "no answer from the registry within \(timeout) (\(problem)); the change may or may not have been made"
        for (token, entry) in pending {
            switch entry {
            case .create(let request, _, _), .createCheck(let request, _, _), .delete(let request, _, _), .metadata(let request):
                if request.deadline <= now {
                    request.answer(.unavailable(why))
                    pending[token] = nil
                }
            case .members(let query):
                if query.gatherUntil <= now || query.request.deadline <= now {
                    query.request.answer(.members(query.members))
                    pending[token] = nil
                }
            case .bucket, .consumer:
                break
            }
        }
    }

    private func flush() {
        if !link.flushAndWatch() { lostLink("write failed") }
    }

    // MARK: The NATS connection

    private func linkEvent(_ events: UInt32) {
        let outcome = readBuffer.withUnsafeMutableBytes { buffer in
            link.receive(events: events, using: buffer, maxReads: 64) { handle($0) }
        }
        if case .failed(let why) = outcome { lostLink(why) }
    }

    private func handle(_ message: NATSServerMessage) {
        guard link.fd >= 0 else { return }  // a handler already gave up on the link
        switch message {
        case .info(let info):
            link.receivedInfo(info)
        case .ping:
            link.enqueueControl { NATSCommand.pong(into: &$0) }
        case .pong:
            if link.state == .handshaking {
                link.becameReady()
                connected()
            } else {
                link.pingsOutstanding = 0
            }
        case .ok:
            break
        case .error(let text):
            registry.lastError = "NATS: \(text)"
        case .message(let message):
            if message.sid == repliesSubscription {
                reply(message)
            } else if message.sid == watchSubscription {
                watched(message)
            } else if message.sid == membersSubscription {
                answerMembersQuery(message)
            }
        }
    }

    private func connected() {
        let replies = link.makeSubscriptionID()
        let members = link.makeSubscriptionID()
        repliesSubscription = replies
        membersSubscription = members
        let repliesSubject = "\(inbox).q.*"
        let membersSubject = membersSubject
        link.enqueueControl { bytes in
            try? NATSCommand.subscribe(subject: repliesSubject, sid: replies, into: &bytes)
            try? NATSCommand.subscribe(subject: membersSubject, sid: members, into: &bytes)
        }
        nextPingAt = now + 1000
        createBucket()
    }

    private func lostLink(_ why: String) {
        link.drop(now: now)
        registry.lastError = why
        registry.isReady.store(false, ordering: .releasing)
        phase = .idle
        repliesSubscription = nil
        membersSubscription = nil
        watchSubscription = nil
        fail(everything: "the connection to NATS was lost (\(why)); the change may or may not have been made", keepWaiting: true)
    }

    /// Answers every request in flight; with `keepWaiting`, those not yet sent wait for the
    /// next connection (until their deadline).
    private func fail(everything why: String, keepWaiting: Bool = false) {
        for entry in pending.values {
            switch entry {
            case .create(let request, _, _), .createCheck(let request, _, _), .delete(let request, _, _), .metadata(let request):
                request.answer(.unavailable(why))
            case .members(let query):
                query.request.answer(.members(query.members))
            case .bucket, .consumer:
                break
            }
        }
        pending.removeAll()
        waiting += delayed.map(\.request)
        delayed.removeAll()
        if !keepWaiting {
            for request in waiting { request.answer(.unavailable(why)) }
            waiting.removeAll()
        }
    }

    /// Publishes `payload` to `subject` with a reply token answered through `pending`.
    private func ask(_ subject: String, headers: [(name: String, value: String)] = [], payload: [UInt8], _ entry: Pending) {
        let token = nextToken
        nextToken += 1
        pending[token] = entry
        let replyTo = "\(inbox).q.\(token)"
        link.enqueueControl { bytes in
            payload.withUnsafeBytes { raw in
                if headers.isEmpty {
                    try? NATSCommand.publish(subject: subject, replyTo: replyTo, payload: raw, into: &bytes)
                } else {
                    try? NATSCommand.publish(subject: subject, replyTo: replyTo, headers: headers, payload: raw, into: &bytes)
                }
            }
        }
    }

    private func publish(_ subject: String, headers: [(name: String, value: String)] = [], payload: [UInt8]) {
        link.enqueueControl { bytes in
            payload.withUnsafeBytes { raw in
                if headers.isEmpty {
                    try? NATSCommand.publish(subject: subject, payload: raw, into: &bytes)
                } else {
                    try? NATSCommand.publish(subject: subject, headers: headers, payload: raw, into: &bytes)
                }
            }
        }
    }

    // MARK: Bucket and watch

    private func createBucket() {
        phase = .creatingBucket
        bucketRequestedAt = now
        pending = pending.filter { if case .bucket = $0.value { return false } else { return true } }
        ask(bucket.streamCreateSubject, payload: bucket.streamCreateRequest(), .bucket)
    }

    /// Starts over: the bucket (which also says its last sequence), a new watch, a new snapshot.
    private func restart(_ why: String) {
        registry.lastError = why
        registry.isReady.store(false, ordering: .releasing)
        if let watch = watchSubscription { link.enqueueControl { NATSCommand.unsubscribe(sid: watch, into: &$0) } }
        watchSubscription = nil
        createBucket()
    }

    private func retryLater(_ why: String) {
        registry.lastError = why
        phase = .idle
        retryAt = now + 1000
    }

    private func bucketReady(_ message: NATSMessage) {
        switch JetStreamResponse.stream(message) {
        case .success(let info):
            snapshotHighWater = info.state?.lastSequence ?? 0
            startWatch()
        case .failure(.api(let error)) where error.errorCode == JetStreamAPIError.streamNameInUse:
            // Made by a relay with other settings (replicas): use it as it is.
            registry.lastError = "bucket \(bucket.bucket) exists with another configuration; using it (\(error.text))"
            snapshotHighWater = UInt64.max  // unknown: reconcile only what the snapshot contradicts
            startWatch()
        case .failure(.noResponders):
            retryLater("JetStream is not available on the NATS server (start nats-server with -js; a new replicated bucket may need a moment)")
        case .failure(let error):
            retryLater("creating bucket \(bucket.bucket): \(error)")
        }
    }

    private func startWatch() {
        watchGeneration += 1
        let subscription = link.makeSubscriptionID()
        watchSubscription = subscription
        watchConsumerSequence = 0
        watchHeardAt = now
        watchRequestedAt = now
        watchConsumerAnswered = false
        snapshotKeys.removeAll()
        phase = .loading
        let deliverSubject = "\(inbox).w.\(watchGeneration)"
        link.enqueueControl { try? NATSCommand.subscribe(subject: deliverSubject, sid: subscription, into: &$0) }
        guard var watch = try? KVWatchConfiguration(bucket: bucket, deliverSubject: deliverSubject) else {
            retryLater("cannot watch \(bucket.bucket)")
            return
        }
        watch.idleHeartbeat = Self.watchHeartbeat
        ask(bucket.consumerCreateSubject, payload: watch.consumerCreateRequest(), .consumer(generation: watchGeneration))
    }

    private func consumerReady(_ message: NATSMessage, generation: UInt64) {
        guard generation == watchGeneration, phase == .loading || phase == .ready else { return }
        watchConsumerAnswered = true
        switch JetStreamResponse.consumer(message) {
        case .success(let info):
            guard phase == .loading else { return }  // the entries came first and finished the snapshot
            watchHeardAt = now
            if info.pending == 0 && watchConsumerSequence == 0 { finishSnapshot() }
        case .failure(let error):
            if let watch = watchSubscription { link.enqueueControl { NATSCommand.unsubscribe(sid: watch, into: &$0) } }
            watchSubscription = nil
            retryLater("watching bucket \(bucket.bucket): \(error)")
        }
    }

    private func watched(_ message: NATSMessage) {
        watchHeardAt = now
        if let status = JetStreamPushStatus(message) {
            if let answer = status.answerSubject { publish(answer, payload: []) }
            if case .idleHeartbeat(_, let lastConsumer?, _) = status, lastConsumer != watchConsumerSequence {
                restart("the watch missed entries (consumer sequence \(lastConsumer), had \(watchConsumerSequence))")
            }
            return
        }
        guard let reply = message.replyTo, let metadata = JetStreamAckMetadata(replySubject: reply) else { return }
        guard metadata.consumerSequence == watchConsumerSequence + 1 else {
            restart("the watch missed entries (consumer sequence \(metadata.consumerSequence) after \(watchConsumerSequence))")
            return
        }
        watchConsumerSequence = metadata.consumerSequence
        guard let entry = KVEntry(message, bucket: bucket) else { return }
        apply(entry, announce: true)
        if phase == .loading {
            snapshotKeys.insert(entry.key)
            if metadata.pending == 0 { finishSnapshot() }
        }
    }

    /// The snapshot is in: forget what it no longer has (deleted while this relay could not
    /// hear), then serve the requests that waited.
    private func finishSnapshot() {
        for (key, revision) in liveRevisions where revision <= snapshotHighWater && !snapshotKeys.contains(key) {
            apply(KVEntry(key: key, value: [], operation: .delete, revision: revision), announce: true)
        }
        snapshotKeys.removeAll()
        phase = .ready
        registry.isReady.store(true, ordering: .releasing)
        if !everLoaded {
            everLoaded = true
            if !startupReported {
                startupReported = true
                registry.finishedLoading(failure: nil)
            }
        }
        let queued = waiting
        waiting.removeAll()
        for request in queued { accept(request) }
    }

    // MARK: Applying entries

    /// Brings the room directory in line with one entry (from the watch, or a write of ours
    /// the server acknowledged). Entries older than what is known are ignored, so the watch
    /// echoing our own writes changes nothing. `announce`: run `onRoomCreate`/`onRoomDelete`
    /// (for changes made elsewhere; a local caller runs them itself).
    private func apply(_ entry: KVEntry, announce: Bool) {
        guard let key = RegistryKey(kvKey: entry.key) else { return }
        switch entry.operation {
        case .put:
            if let live = liveRevisions[entry.key], live >= entry.revision { return }
            if let dead = deletedRevisions[entry.key], dead >= entry.revision { return }
            liveRevisions[entry.key] = entry.revision
            deletedRevisions[entry.key] = nil
            switch key {
            case .room(let roomID):
                roomAppeared(roomID, revision: entry.revision, announce: announce)
            case .metadata(let roomID, let roomRevision, let name):
                setMetadata(roomID, roomRevision: roomRevision, key: name, value: String(decoding: entry.value, as: UTF8.self))
            }
        case .delete, .purge:
            if let dead = deletedRevisions[entry.key], dead >= entry.revision { return }
            if let live = liveRevisions[entry.key], live > entry.revision { return }
            liveRevisions[entry.key] = nil
            deletedRevisions[entry.key] = entry.revision
            switch key {
            case .room(let roomID):
                if let record = core.rooms.record(roomID), record.clusterRevision < entry.revision {
                    removeLocally(record, announce: announce)
                }
            case .metadata(let roomID, let roomRevision, let name):
                setMetadata(roomID, roomRevision: roomRevision, key: name, value: nil)
            }
        }
    }

    private func roomAppeared(_ roomID: String, revision: UInt64, announce: Bool) {
        if let record = core.rooms.record(roomID) {
            if record.clusterRevision >= revision { return }
            removeLocally(record, announce: announce)  // an older incarnation this relay missed the end of
        }
        guard core.rooms.create(roomID, clusterRevision: revision) != nil else { return }
        if announce { core.handler.onRoomCreate(roomID) }
    }

    private func removeLocally(_ record: RoomRecord, announce: Bool) {
        guard core.rooms.delete(record) else { return }
        core.mailboxes[record.shard].post(.roomDeleted(roomID: record.id, generation: record.generation))
        if announce { core.handler.onRoomDelete(record.id) }
    }

    private func setMetadata(_ roomID: String, roomRevision: UInt64, key: String, value: String?) {
        guard let record = core.rooms.record(roomID), record.clusterRevision == roomRevision else { return }
        record.state.withLock { $0.metadata[key] = value }
    }

    // MARK: Requests

    private func accept(_ request: RegistryRequest) {
        guard !request.isAnswered else { return }
        if case .members(let roomIDs) = request.operation {
            // Needs only the connection, not the bucket; without it, say what is known now
            // rather than keep a count waiting.
            guard link.isConnected else { return request.answer(.members([:])) }
            return askForMembers(request, roomIDs: roomIDs)
        }
        guard phase == .ready else {
            waiting.append(request)
            return
        }
        switch request.operation {
        case .create(let roomID):
            create(request, roomID: roomID, attempt: 0)
        case .delete(let roomID, let revision):
            let key = RegistryKey.room(roomID).kvKey
            guard let subject = try? bucket.subject(forKey: key) else { return request.answer(.notFound) }
            ask(subject, headers: KVBucketConfiguration.deleteHeaders + KVBucketConfiguration.updateHeaders(revision: revision),
                    payload: [], .delete(request, roomID: roomID, revision: revision))
        case .setMetadata(let roomID, let revision, let name, let value):
            let key = RegistryKey.metadata(roomID: roomID, roomRevision: revision, key: name).kvKey
            guard key.utf8.count <= RegistryKey.maxKeyBytes, let subject = try? bucket.subject(forKey: key) else {
                return request.answer(.unavailable("room ID and key are too long for the registry (\(RegistryKey.maxKeyBytes) bytes as hex)"))
            }
            if let value {
                ask(subject, payload: Array(value.utf8), .metadata(request))
            } else {
                ask(subject, headers: KVBucketConfiguration.deleteHeaders, payload: [], .metadata(request))
            }
        case .members:
            break  // asked above
        }
    }

    private func create(_ request: RegistryRequest, roomID: String, attempt: Int) {
        let key = RegistryKey.room(roomID).kvKey
        guard let subject = try? bucket.subject(forKey: key) else { return request.answer(.unavailable("room ID too long for the registry")) }
        if liveRevisions[key] != nil { return request.answer(.alreadyExists) }
        // Absent: no message at all (0), or a delete marker, whose revision must be named.
        let expected = deletedRevisions[key] ?? 0
        ask(subject, headers: KVBucketConfiguration.updateHeaders(revision: expected),
                     payload: Array(registry.node.name.utf8), .create(request, roomID: roomID, attempt: attempt))
    }

    private func reply(_ message: NATSMessage) {
        // `<inbox>.q.<token>`
        let subject = message.subjectBytes
        guard let dot = subject.lastIndex(of: UInt8(ascii: ".")),
              let token = UInt64(String(decoding: UnsafeRawBufferPointer(rebasing: subject[(dot + 1)...]), as: UTF8.self)),
              let entry = pending[token]
        else { return }
        if case .members(let query) = entry {
            gatherMembers(message, into: query, token: token)
            return
        }
        pending[token] = nil
        switch entry {
        case .bucket:
            bucketReady(message)
        case .consumer(let generation):
            consumerReady(message, generation: generation)
        case .create(let request, let roomID, let attempt):
            let key = RegistryKey.room(roomID).kvKey
            switch JetStreamResponse.pubAck(message) {
            case .success(let ack):
                apply(KVEntry(key: key, value: [], operation: .put, revision: ack.sequence), announce: false)
                request.answer(.created)
            case .failure(.api(let error)) where error.errorCode == JetStreamAPIError.wrongLastSequence && attempt < 3:
                // Someone else's value, or a delete marker this relay has not seen: look.
                guard let subject = try? bucket.directGetSubject(forKey: key) else { return request.answer(.alreadyExists) }
                ask(subject, payload: [], .createCheck(request, roomID: roomID, attempt: attempt + 1))
            case .failure(.api(let error)) where error.errorCode == JetStreamAPIError.wrongLastSequence:
                request.answer(.alreadyExists)
            case .failure(.noResponders):
                retrySoon(request)
            case .failure(let error):
                request.answer(.unavailable("\(error)"))
            }
        case .createCheck(let request, let roomID, let attempt):
            let key = RegistryKey.room(roomID).kvKey
            if message.status == 404 {
                deletedRevisions[key] = nil  // purged meanwhile: no message at all
            } else if let entry = KVEntry(message, bucket: bucket) {
                apply(entry, announce: true)
                if entry.operation == .put { return request.answer(.alreadyExists) }
            } else {
                return request.answer(.unavailable("unexpected registry reply (status \(message.status.map(String.init) ?? "none"))"))
            }
            create(request, roomID: roomID, attempt: attempt)
        case .delete(let request, let roomID, let revision):
            let key = RegistryKey.room(roomID).kvKey
            switch JetStreamResponse.pubAck(message) {
            case .success(let ack):
                apply(KVEntry(key: key, value: [], operation: .delete, revision: ack.sequence), announce: false)
                deleteMetadata(ofRoom: roomID, revision: revision)
                request.answer(.deleted)
            case .failure(.api(let error)) where error.errorCode == JetStreamAPIError.wrongLastSequence:
                request.answer(.notFound)  // deleted (or deleted and created again) elsewhere first
            case .failure(.noResponders):
                retrySoon(request)
            case .failure(let error):
                request.answer(.unavailable("\(error)"))
            }
        case .metadata(let request):
            guard case .setMetadata(let roomID, let revision, let name, let value) = request.operation else { return }
            let key = RegistryKey.metadata(roomID: roomID, roomRevision: revision, key: name).kvKey
            switch JetStreamResponse.pubAck(message) {
            case .success(let ack):
                let operation: KVEntry.Operation = value == nil ? .delete : .put
                apply(KVEntry(key: key, value: Array((value ?? "").utf8), operation: operation, revision: ack.sequence), announce: false)
                request.answer(.metadataSet)
            case .failure(.noResponders):
                retrySoon(request)
            case .failure(let error):
                request.answer(.unavailable("\(error)"))
            }
        case .members:
            break
        }
    }

    /// The bucket's stream had no leader to take the write (503: right after the bucket was
    /// created, or during an election): nothing was written; send it again in 200 ms, until
    /// the request's deadline.
    private func retrySoon(_ request: RegistryRequest) {
        delayed.append((at: now + 200, request: request))
    }

    /// A deleted room's metadata would never be read again (keys carry the room's revision):
    /// remove it so the bucket does not keep it. Best effort, unacknowledged.
    private func deleteMetadata(ofRoom roomID: String, revision: UInt64) {
        let prefix = "m.\(NATSSubject.token(forRoom: roomID)).\(revision)."
        for key in liveRevisions.keys where key.hasPrefix(prefix) {
            guard let subject = try? bucket.subject(forKey: key) else { continue }
            publish(subject, headers: KVBucketConfiguration.purgeHeaders, payload: [])
        }
    }

    // MARK: Members on other relays

    /// Asks every live relay for its members of `roomIDs` (nil: all rooms) and gathers the
    /// answers until each has answered or `membersGatherMilliseconds` passed.
    private func askForMembers(_ request: RegistryRequest, roomIDs: [String]?) {
        var expected = Set<String>()
        for view in core.clusterViews {
            if let peers = view.withLock({ $0?.peers }) { expected.formUnion(peers.map(\.name)) }
        }
        guard !expected.isEmpty else { return request.answer(.members([:])) }
        var body: [UInt8] = []
        ClusterEnvelope.writeHeader(.membersQuery, node: registry.node, into: &body)
        ClusterEnvelope.writeCount(roomIDs?.count ?? 0, into: &body)
        body.append(roomIDs == nil ? 1 : 0)
        for roomID in roomIDs ?? [] { ClusterEnvelope.writeRoomID(roomID, into: &body) }
        let query = MembersQuery(request: request, expected: expected, gatherUntil: now + Self.membersGatherMilliseconds)
        ask(membersSubject, payload: body, .members(query))
    }

    private func gatherMembers(_ message: NATSMessage, into query: MembersQuery, token: UInt64) {
        guard let envelope = ClusterEnvelope(parsing: message.payload), envelope.operation == .membersReply else { return }
        let body = UnsafeRawBufferPointer(rebasing: message.payload[envelope.bodyOffset...])
        guard let lists = ClusterEnvelope.memberLists(in: body) else { return }
        for (roomID, members) in lists { query.members[roomID, default: []] += members }
        query.answered.insert(envelope.node.name)
        if query.answered.isSuperset(of: query.expected) {
            pending[token] = nil
            query.request.answer(.members(query.members))
        }
    }

    /// Another relay asks who is in which rooms here: the members of this relay (their own
    /// worker's view would do too, but the directory is readable from any thread).
    private func answerMembersQuery(_ message: NATSMessage) {
        guard let replyTo = message.replyTo, let envelope = ClusterEnvelope(parsing: message.payload),
              envelope.operation == .membersQuery, envelope.node != registry.node
        else { return }
        let body = UnsafeRawBufferPointer(rebasing: message.payload[envelope.bodyOffset...])
        guard let count = ClusterEnvelope.count(in: body, at: 0), body.count >= 5 else { return }
        var records: [RoomRecord] = []
        if body[4] & 1 != 0 {
            records = core.rooms.allRecords
        } else {
            var offset = 5
            for _ in 0..<count {
                guard let (roomID, length) = ClusterEnvelope.roomID(in: UnsafeRawBufferPointer(rebasing: body[offset...])) else { return }
                offset += length
                if let record = core.rooms.record(roomID) { records.append(record) }
            }
        }
        var lists: [(String, [UUID])] = []
        for record in records {
            let members = record.state.withLock { $0.members.map(\.id) }
            if !members.isEmpty { lists.append((record.id, members)) }
        }
        var reply: [UInt8] = []
        ClusterEnvelope.writeHeader(.membersReply, node: registry.node, into: &reply)
        ClusterEnvelope.writeMemberLists(lists, into: &reply)
        publish(replyTo, payload: reply)
    }
}
