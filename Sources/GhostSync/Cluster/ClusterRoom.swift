#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// One room's cluster state on the worker that owns it: its NATS subject and subscription, and
/// the members other relays have announced.
///
/// Thread confinement: like its `LocalRoom`, the owning worker's alone.
final class ClusterRoom {
    /// `ghost.room.<hex of the room ID>`, made (and so checked) once.
    let subjectString: String
    let subject: [UInt8]
    /// The subscription's ID while the room has members on this relay (and the link is up).
    var subscription: UInt64?
    /// Members on other relays, by node. A node's entry is replaced by its sync reply.
    var remoteMembers: [ClusterNodeID: Set<UUID>] = [:]
    /// Whether this relay may have missed announcements for the room: after its NATS link was
    /// lost, or after it took another relay for dead. Member lists then merge with events for
    /// the differences; otherwise silently (members that were there before this relay's first
    /// member joined: no PlayerJoined, as on one relay). Sent along in sync lists, since either
    /// side's gap means differences to announce.
    var announcesSyncChanges = false

    init(roomID: String, subjects: ClusterSubjects) {
        self.subjectString = subjects.room(roomID)
        self.subject = Array(subjectString.utf8)
    }

    var remoteMemberIDs: [UUID] { remoteMembers.values.flatMap { $0 } }

    var remoteMemberCount: Int { remoteMembers.values.reduce(0) { $0 + $1.count } }
}
