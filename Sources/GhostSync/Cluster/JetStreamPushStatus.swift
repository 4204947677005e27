/// The status messages a push consumer with flow control and idle heartbeats sends between
/// its data messages (HMSG with a `100` status and no payload).
///
/// A flow-control request comes with a reply subject and must be answered with an empty PUB
/// to it, or the consumer stops delivering once its window is full. An idle heartbeat has no
/// reply subject; if the consumer is stalled waiting for a lost flow-control answer, its
/// `Nats-Consumer-Stalled` header names the subject to answer instead.
package enum JetStreamPushStatus: Sendable, Equatable {
    /// `NATS/1.0 100 FlowControl Request`: answer with an empty PUB to `reply`.
    case flowControl(reply: String)
    /// `NATS/1.0 100 Idle Heartbeat`: the consumer is alive. `stalledReply`, when present, must
    /// be answered like a flow-control request. The last sequences let a watcher detect a gap.
    case idleHeartbeat(stalledReply: String?, lastConsumerSequence: UInt64?, lastStreamSequence: UInt64?)
    /// Any other status (`404`, `408`, `409` belong to pull consumers).
    case other(status: Int, description: String?)

    /// The status a message carries; nil for a data message (no status line).
    package init?(_ message: NATSMessage) {
        guard let status = message.status else { return nil }
        guard status == 100 else {
            self = .other(status: status, description: message.statusDescription)
            return
        }
        if let reply = message.replyTo {
            self = .flowControl(reply: reply)
        } else {
            self = .idleHeartbeat(
                stalledReply: message.value(ofHeader: "Nats-Consumer-Stalled"),
                lastConsumerSequence: message.value(ofHeader: "Nats-Last-Consumer").flatMap { UInt64($0) },
                lastStreamSequence: message.value(ofHeader: "Nats-Last-Stream").flatMap { UInt64($0) }
            )
        }
    }

    /// Where to send an empty PUB in answer, if anywhere.
    package var answerSubject: String? {
        switch self {
        case .flowControl(let reply): return reply
        case .idleHeartbeat(let stalled, _, _): return stalled
        case .other: return nil
        }
    }
}
