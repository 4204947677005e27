import CGhostSyncShims
import Glibc

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

// Rooms across relays (docs/cluster.md). Each worker has its own NATS connection and speaks for
// the rooms it owns: it subscribes to a room's subject while the room has members here,
// publishes each local broadcast and join/leave there once, and fans out what other relays
// publish with the same path as a local broadcast. Nothing here crosses a thread.
extension Worker {
    /// What this worker knows about another relay.
    struct ClusterPeer {
        var incarnation: UInt64
        var lastHeard: Int64
        /// Its member count, from its heartbeats.
        var members: Int
    }

    // MARK: Link lifecycle (called from the loop)

    /// Due work: connect or reconnect, heartbeats, PINGs to the server, dead relays.
    func clusterTick() {
        guard let cluster else { return }
        cluster.connectIfDue(now: now)
        guard now >= nextClusterTickAt else { return }
        nextClusterTickAt = now + clusterHeartbeatInterval
        if cluster.isConnected {
            // A server that stops answering is left for another one.
            if cluster.pingsOutstanding >= 2 {
                lostClusterLink("no PONG from the NATS server")
                return
            }
            cluster.pingsOutstanding += 1
            cluster.enqueueControl { NATSCommand.ping(into: &$0) }
            if index == 0 { publishHeartbeat(.heartbeat) }
            queueClusterFlush()
        }
        forgetSilentPeers()
        publishClusterView()
    }

    /// An event on the NATS socket.
    func clusterEvent(_ events: UInt32) {
        guard let cluster else { return }
        switch cluster.receive(events: events, using: readBuffer, maxReads: 16, { message in self.handleNATS(message) }) {
        case .received(let bytes):
            statistics[.clusterBytesIn] += bytes
            if events & gs_EPOLLOUT != 0 { queueClusterFlush() }
        case .failed(let why):
            lostClusterLink(why)
        }
    }

    /// Writes the link's queue (from `flushAll`, and on EPOLLOUT).
    func flushCluster() {
        guard let cluster, !cluster.flushAndWatch() else { return }
        lostClusterLink("write failed")
    }

    func queueClusterFlush() {
        clusterFlushQueued = true
    }

    /// The link broke: drop it and try again soon (another server first). Subscriptions are
    /// made again on reconnect; until then publishes are dropped and counted.
    func lostClusterLink(_ why: String) {
        guard let cluster else { return }
        if cluster.isConnected {
            statistics[.clusterDisconnects] += 1
            callingHook { handler.onClusterLinkChanged(worker: index, isUp: false, reason: why) }
        }
        cluster.drop(now: now)
        clusterLastError = why
        for room in rooms.values {
            if let state = room.cluster, state.subscription != nil {
                state.subscription = nil
                state.announcesSyncChanges = true  // what changes while the link is down is announced after
            }
        }
        roomsBySubscription.removeAll()
        heartbeatSubscription = nil
        inboxSubscription = nil
    }

    private func handleNATS(_ message: NATSServerMessage) {
        guard let cluster else { return }
        switch message {
        case .info(let info):
            cluster.receivedInfo(info)
            queueClusterFlush()
        case .ping:
            cluster.enqueueControl { NATSCommand.pong(into: &$0) }
            queueClusterFlush()
        case .pong:
            if cluster.state == .handshaking {
                cluster.becameReady()
                statistics[.clusterConnects] += 1
                callingHook { handler.onClusterLinkChanged(worker: index, isUp: true, reason: nil) }
                // The peers get a full timeout from now to be heard again.
                for name in peers.keys { peers[name]?.lastHeard = now }
                resubscribeEverything()
            } else {
                cluster.pingsOutstanding = 0
            }
        case .ok:
            break
        case .error(let text):
            clusterLastError = text
            statistics[.clusterErrors] += 1
        case .message(let message):
            statistics[.clusterMessagesIn] += 1
            receive(message)
        }
    }

    /// After (re)connecting: the heartbeat and inbox subscriptions, then every room that has
    /// members here, each with a sync request.
    private func resubscribeEverything() {
        guard let cluster else { return }
        let heartbeats = cluster.makeSubscriptionID()
        let inbox = cluster.makeSubscriptionID()
        heartbeatSubscription = heartbeats
        inboxSubscription = inbox
        let inboxSubject = clusterInbox
        cluster.enqueueControl { bytes in
            try? NATSCommand.subscribe(subject: clusterSubjects.allNodeHeartbeats, sid: heartbeats, into: &bytes)
            try? NATSCommand.subscribe(subject: inboxSubject, sid: inbox, into: &bytes)
        }
        for room in rooms.values where !room.isEmpty {
            subscribe(room)
            requestSync(of: room)
        }
        if index == 0 { publishHeartbeat(.heartbeat) }
        queueClusterFlush()
    }

    // MARK: Rooms

    /// The room's first member here joined: subscribe (the caller announces the join, then
    /// asks the others who is in the room: `requestSync`, in that order, so a relay that hears
    /// both learns of the join as a join).
    func clusterRoomGainedFirstMember(_ room: LocalRoom) {
        guard cluster != nil else { return }
        if room.cluster == nil { room.cluster = ClusterRoom(roomID: room.id, subjects: clusterSubjects) }
        subscribe(room)
    }

    /// The room's last member here left: unsubscribe and forget the others (nobody here to tell).
    func clusterRoomLostLastMember(_ room: LocalRoom) {
        guard let cluster, let state = room.cluster else { return }
        if let subscription = state.subscription {
            cluster.enqueueControl { NATSCommand.unsubscribe(sid: subscription, into: &$0) }
            roomsBySubscription[subscription] = nil
            queueClusterFlush()
        }
        state.subscription = nil
        state.remoteMembers.removeAll()
        state.announcesSyncChanges = false
        room.record.setRemoteMembers([])
    }

    private func subscribe(_ room: LocalRoom) {
        guard let cluster, cluster.isConnected, let state = room.cluster, state.subscription == nil else { return }
        let subscription = cluster.makeSubscriptionID()
        state.subscription = subscription
        roomsBySubscription[subscription] = room
        cluster.enqueueControl { try? NATSCommand.subscribe(subject: state.subjectString, sid: subscription, into: &$0) }
        queueClusterFlush()
    }

    /// Asks the other relays with members in the room for their lists, sending this relay's.
    func requestSync(of room: LocalRoom) {
        guard let cluster, cluster.isConnected, let state = room.cluster, state.subscription != nil else { return }
        let inbox = Array(clusterInbox.utf8)
        let body = memberList(.syncRequest, of: room, node: cluster.node)
        cluster.enqueueControl { bytes in
            body.withUnsafeBytes { try? NATSCommand.publish(subject: state.subject, replyTo: inbox, payload: $0, into: &bytes) }
        }
        statistics[.clusterMessagesOut] += 1
        queueClusterFlush()
    }

    /// A sync request or reply: the room, whether this relay may have missed announcements for
    /// it, and this relay's members of it. Requests carry the list too, so that whichever relay
    /// subscribes or reconnects first learns what the other's members did while the other could
    /// not hear it (its own request may have gone out before the other subscribed).
    private func memberList(_ operation: ClusterEnvelope.Operation, of room: LocalRoom, node: ClusterNodeID) -> [UInt8] {
        var body: [UInt8] = []
        ClusterEnvelope.writeHeader(operation, node: node, into: &body)
        ClusterEnvelope.writeRoomID(room.id, into: &body)
        body.append(room.cluster?.announcesSyncChanges == true ? 1 : 0)
        ClusterEnvelope.writeCount(room.memberCount, into: &body)
        room.forEachMember { ClusterEnvelope.writeClientID($0.id, into: &body) }
        return body
    }

    /// PlayerJoined / PlayerLeft of a member here, for the other relays.
    func clusterAnnounce(_ operation: ClusterEnvelope.Operation, clientID: UUID, in room: LocalRoom) {
        guard let cluster, cluster.isConnected, let state = room.cluster, state.subscription != nil else { return }
        var body: [UInt8] = []
        ClusterEnvelope.writeHeader(operation, node: cluster.node, into: &body)
        ClusterEnvelope.writeClientID(clientID, into: &body)
        publish(body, to: state.subject)
    }

    /// A broadcast (`frame`: the TCP framing of a ServerWire broadcast) for the other relays:
    /// one publish per broadcast per relay, whatever the number of members elsewhere.
    @inline(__always)
    func clusterPublish(_ frame: SharedFrame, in room: LocalRoom) {
        guard let state = room.cluster, state.subscription != nil else { return }
        clusterPublish(frame, to: state.subject)
    }

    /// A broadcast to a room's `subject` (checked: `ClusterSubjects.room`).
    @inline(__always)
    func clusterPublish(_ frame: SharedFrame, to subject: [UInt8]) {
        guard let cluster else { return }
        let payloadSize = frame.count - WireSize.framePrefix
        let total = ClusterEnvelope.headerSize(node: cluster.node) + payloadSize
        guard total <= cluster.maxPayload, cluster.isConnected,
              cluster.enqueue(reserving: total + subject.count + 32, { bytes in
                  NATSCommand.publishLine(checkedSubject: subject, payloadSize: total, into: &bytes)
                  ClusterEnvelope.writeHeader(.broadcast, node: cluster.node, into: &bytes)
                  bytes.append(contentsOf: UnsafeRawBufferPointer(start: frame.bytes + WireSize.framePrefix, count: payloadSize))
                  NATSCommand.endPayload(into: &bytes)
              })
        else {
            statistics[.clusterDrops] += 1
            return
        }
        statistics[.clusterMessagesOut] += 1
        statistics[.clusterBytesOut] += total
        queueClusterFlush()
    }

    private func publish(_ body: [UInt8], to subject: [UInt8]) {
        guard let cluster, cluster.isConnected else {
            statistics[.clusterDrops] += 1
            return
        }
        let queued = cluster.enqueue(reserving: body.count + subject.count + 64) { bytes in
            body.withUnsafeBytes { try? NATSCommand.publish(subject: subject, payload: $0, into: &bytes) }
        }
        if queued {
            statistics[.clusterMessagesOut] += 1
            statistics[.clusterBytesOut] += body.count
            queueClusterFlush()
        } else {
            statistics[.clusterDrops] += 1
        }
    }

    private func publishHeartbeat(_ operation: ClusterEnvelope.Operation) {
        guard let cluster else { return }
        var body: [UInt8] = []
        ClusterEnvelope.writeHeader(operation, node: cluster.node, into: &body)
        ClusterEnvelope.writeCount(core.connectionCount.load(ordering: .relaxed), into: &body)
        guard let subject = try? clusterSubjects.nodeHeartbeat(NATSSubject.token(forRoom: cluster.node.name)) else { return }
        publish(body, to: Array(subject.utf8))
    }

    /// At shutdown: the other relays drop this one's members at once instead of waiting for
    /// the missed heartbeats.
    func announceClusterLeaving() {
        guard let cluster, cluster.isConnected, index == 0 else { return }
        publishHeartbeat(.leaving)
        _ = cluster.flushAndWatch()  // best effort: the link closes next
    }

    // MARK: Receiving

    private func receive(_ message: NATSMessage) {
        guard let cluster, let envelope = ClusterEnvelope(parsing: message.payload) else {
            statistics[.clusterErrors] += 1
            return
        }
        // Our own traffic never comes back (echo is off on the connection); a relay that
        // somehow shares our name and incarnation is ignored the same way.
        guard envelope.node != cluster.node else { return }
        heard(envelope.node)
        let body = UnsafeRawBufferPointer(rebasing: message.payload[envelope.bodyOffset...])
        if message.sid == heartbeatSubscription {
            switch envelope.operation {
            case .heartbeat: peers[envelope.node.name]?.members = ClusterEnvelope.count(in: body, at: 0) ?? 0
            case .leaving: peerIsGone(envelope.node)
            default: break
            }
            return
        }
        if message.sid == inboxSubscription {
            if envelope.operation == .syncReply { mergeMemberList(from: envelope.node, body) }
            return
        }
        guard let room = roomsBySubscription[message.sid], let state = room.cluster else { return }
        switch envelope.operation {
        case .broadcast:
            relayFromCluster(body, in: room)
        case .joined:
            guard let clientID = ClusterEnvelope.clientID(in: body) else { return }
            if state.remoteMembers[envelope.node, default: []].insert(clientID).inserted {
                publishRemoteMembers(of: room)
                fanOut(SharedFrame.encoding(.playerJoined(clientID: clientID), pool: framePool), in: room)
            }
        case .left:
            guard let clientID = ClusterEnvelope.clientID(in: body) else { return }
            if state.remoteMembers[envelope.node]?.remove(clientID) != nil {
                publishRemoteMembers(of: room)
                fanOut(SharedFrame.encoding(.playerLeft(clientID: clientID), pool: framePool), in: room)
            }
        case .syncRequest:
            // The requester's own members: news for the members here if they changed.
            mergeMemberList(from: envelope.node, body)
            guard let replyTo = message.replyTo, !room.isEmpty else { return }
            publish(memberList(.syncReply, of: room, node: cluster.node), to: Array(replyTo.utf8))
        case .syncReply, .heartbeat, .leaving, .membersQuery, .membersReply:
            break
        }
    }

    /// Another relay's broadcast: checked to be a well-formed ServerWire broadcast (the only
    /// thing ever published as one), then framed and fanned out like a local one, to every
    /// member here.
    private func relayFromCluster(_ body: UnsafeRawBufferPointer, in room: LocalRoom) {
        let fixed = WireSize.tag + 16 + 8
        guard body.count >= fixed, body.loadUnaligned(as: UInt32.self) == UInt32(6).littleEndian,
              UInt64(littleEndian: body.loadUnaligned(fromByteOffset: WireSize.tag + 16, as: UInt64.self)) == UInt64(body.count - fixed)
        else {
            statistics[.clusterErrors] += 1
            return
        }
        guard !room.isDeleted, !room.isEmpty else { return }
        let frame = framePool.frame(count: WireSize.framePrefix + body.count)
        var writer = WireWriter(frame.buffer)
        writer.writeFrameLength(body.count)
        (frame.bytes + WireSize.framePrefix).copyMemory(from: body.baseAddress!, byteCount: body.count)
        fanOut(frame, in: room)
    }

    /// Replaces what this worker knows of `node`'s members of the room named in `body`. The
    /// differences are announced (PlayerJoined, PlayerLeft) when either side may have missed
    /// announcements (`ClusterRoom.announcesSyncChanges`, here or in the list's flag); otherwise
    /// the list is what was there before this relay's first member joined, learnt silently.
    private func mergeMemberList(from node: ClusterNodeID, _ body: UnsafeRawBufferPointer) {
        guard let (roomID, offset) = ClusterEnvelope.roomID(in: body), let room = rooms[roomID],
              let state = room.cluster, state.subscription != nil, body.count > offset,
              let count = ClusterEnvelope.count(in: body, at: offset + 1), body.count >= offset + 5 + count * 16
        else { return }
        let senderMayHaveMissed = body[offset] & 1 != 0
        var members = Set<UUID>()
        for index in 0..<count {
            if let id = ClusterEnvelope.clientID(in: body, at: offset + 5 + index * 16) { members.insert(id) }
        }
        let previous = state.remoteMembers[node] ?? []
        state.remoteMembers[node] = members
        publishRemoteMembers(of: room)
        guard senderMayHaveMissed || state.announcesSyncChanges else { return }
        for id in members.subtracting(previous) {
            fanOut(SharedFrame.encoding(.playerJoined(clientID: id), pool: framePool), in: room)
        }
        for id in previous.subtracting(members) {
            fanOut(SharedFrame.encoding(.playerLeft(clientID: id), pool: framePool), in: room)
        }
    }

    private func publishRemoteMembers(of room: LocalRoom) {
        room.record.setRemoteMembers(room.cluster?.remoteMemberIDs ?? [])
    }

    // MARK: Other relays' lives

    private func heard(_ node: ClusterNodeID) {
        if let known = peers[node.name], known.incarnation != node.incarnation {
            // Restarted under the same name: its previous life's members are gone.
            peerIsGone(ClusterNodeID(name: node.name, incarnation: known.incarnation))
        }
        if peers[node.name] == nil {
            // A relay heard for the first time, or again after it was taken for dead (stopped,
            // partitioned): ask again who is where, and announce what changed.
            peers[node.name] = ClusterPeer(incarnation: node.incarnation, lastHeard: now, members: 0)
            resyncSubscribedRooms()
        }
        peers[node.name]?.lastHeard = now
    }

    private func resyncSubscribedRooms() {
        guard let cluster, cluster.isConnected else { return }
        for room in rooms.values {
            guard let state = room.cluster, state.subscription != nil else { continue }
            state.announcesSyncChanges = true
            requestSync(of: room)
        }
    }

    /// Relays not heard from for `missedHeartbeatsForDead` intervals are dead. Only while this
    /// worker's own link is up: a worker that cannot hear anyone cannot tell who is dead, and
    /// after it reconnects the re-sync announces what changed.
    private func forgetSilentPeers() {
        guard cluster?.isConnected == true else { return }
        let deadline = now - clusterHeartbeatInterval * Int64(clusterMissedHeartbeats)
        for (name, peer) in peers where peer.lastHeard < deadline {
            peerIsGone(ClusterNodeID(name: name, incarnation: peer.incarnation))
        }
    }

    /// Every member of `node` leaves every room here (PlayerLeft to the members here).
    private func peerIsGone(_ node: ClusterNodeID) {
        if peers[node.name]?.incarnation == node.incarnation {
            peers[node.name] = nil
            if index == 0 { statistics[.clusterDeadNodes] += 1 }
        }
        for room in rooms.values {
            guard let state = room.cluster, let members = state.remoteMembers.removeValue(forKey: node) else { continue }
            state.announcesSyncChanges = true  // if it turns out to be alive, its members are announced again
            publishRemoteMembers(of: room)
            for id in members {
                fanOut(SharedFrame.encoding(.playerLeft(clientID: id), pool: framePool), in: room)
            }
        }
    }

    /// This worker's view of the other relays, for `ServerHandle.clusterNodes`.
    func publishClusterView() {
        guard let cluster else { return }
        let view = ClusterView(
            connected: cluster.isConnected, lastError: clusterLastError,
            peers: peers.map { ClusterNodeStatus(name: $0.key, members: $0.value.members, lastHeard: $0.value.lastHeard) })
        core.clusterViews[index].withLock { $0 = view }
    }

    /// Where this worker's sync requests are answered: `_INBOX.ghost.<hex name>.<incarnation>.<worker>`.
    var clusterInbox: String {
        let node = cluster?.node
        let base = (try? clusterSubjects.inbox(node: NATSSubject.token(forRoom: node?.name ?? ""))) ?? "_INBOX.ghost"
        return "\(base).\(String(node?.incarnation ?? 0, radix: 16)).\(index)"
    }
}
