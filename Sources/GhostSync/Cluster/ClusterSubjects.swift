/// The subjects a GhostSync cluster uses on NATS, all under one prefix (default `ghost`), so
/// several clusters (or tests) can share one NATS system.
///
/// | subject | carries | who subscribes |
/// | --- | --- | --- |
/// | `<prefix>.room.<token>` | a room's traffic: broadcasts, joins, leaves and sync requests of one node's members | every node with a local member of the room (SUB on the first, UNSUB after the last) |
/// | `<prefix>.node.<node>.hb` | a node's heartbeats and its shutdown notice | every node (`<prefix>.node.*.hb`) |
/// | `<prefix>.members` | member queries: who is in which room on each relay | every relay's registry |
/// | `_INBOX.<prefix>.<node>.<incarnation>.<worker>` | sync replies to one worker | that worker |
/// | `_INBOX.<prefix>.<node>.<incarnation>.registry.q.<n>`, `….registry.w.<n>` | replies to the registry, its watch | the registry |
///
/// `<token>` is `NATSSubject.token(forRoom:)`; the room registry's KV key is the same token
/// (`KVBucketConfiguration`, bucket `<prefix>_rooms` by default).
package struct ClusterSubjects: Sendable, Equatable {
    /// One or more plain-name tokens joined by `.`.
    package let prefix: String

    package init(prefix: String = "ghost") throws(NATSProtocolError) {
        guard prefix.split(separator: ".", omittingEmptySubsequences: false).allSatisfy({ NATSSubject.isPlainName($0) }) else {
            throw .invalidSubject(prefix, reason: "a prefix is plain names ([A-Za-z0-9_-]+) joined by '.'")
        }
        self.prefix = prefix
    }

    /// `<prefix>.room.<token>`: the room's traffic.
    package func room(_ roomID: String) -> String { "\(prefix).room.\(NATSSubject.token(forRoom: roomID))" }

    /// `<prefix>.room.*`: every room's traffic (for monitoring).
    package var allRooms: String { "\(prefix).room.*" }

    /// The room ID of a `room(_:)` subject; nil for any other subject.
    package func roomID(fromRoomSubject subject: some StringProtocol) -> String? {
        let head = prefix + ".room."
        guard subject.hasPrefix(head) else { return nil }
        let token = subject.dropFirst(head.count)
        guard !token.contains(".") else { return nil }
        return NATSSubject.roomID(fromToken: token)
    }

    /// `<prefix>.node.<node>.hb`: the node's heartbeats. `node` must be a plain name.
    package func nodeHeartbeat(_ node: String) throws(NATSProtocolError) -> String {
        try checkNode(node)
        return "\(prefix).node.\(node).hb"
    }

    /// `<prefix>.members`: member queries between the relays' registries (who is in which
    /// room on each relay), answered to the asker's inbox.
    package var membersQuery: String { "\(prefix).members" }

    /// `<prefix>.node.*.hb`: every node's heartbeats.
    package var allNodeHeartbeats: String { "\(prefix).node.*.hb" }

    /// `_INBOX.<prefix>.<node>`: append `.<n>` for one request's reply subject; subscribe to
    /// this plus `.>` for all of them.
    package func inbox(node: String) throws(NATSProtocolError) -> String {
        try checkNode(node)
        return "_INBOX.\(prefix).\(node)"
    }

    /// The default room-registry bucket: `<prefix>_rooms` with dots as `_`.
    package var roomBucket: String { prefix.replacingDots() + "_rooms" }

    private func checkNode(_ node: String) throws(NATSProtocolError) {
        guard NATSSubject.isPlainName(node) else { throw .invalidSubject(node, reason: "a node ID is a plain name ([A-Za-z0-9_-]+)") }
    }
}

private extension String {
    func replacingDots() -> String { String(map { $0 == "." ? "_" : $0 }) }
}
