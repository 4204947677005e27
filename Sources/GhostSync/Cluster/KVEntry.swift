/// One key's entry as a watch delivers it or a direct get returns it, copied out of the
/// message (it outlives the parser's callback).
///
/// - the key: from the message's subject `$KV.<bucket>.<key>`, or for a direct get reply (whose
///   subject is the requester's inbox) from its `Nats-Subject` header;
/// - the operation: the `KV-Operation` header (`DEL`, `PURGE`), a put without one;
/// - the revision: the stream sequence, from the `Nats-Sequence` header of a direct get reply or
///   from the ack reply subject of a push message (`JetStreamAckMetadata`), which also gives
///   the time it was stored and how many entries are still pending.
package struct KVEntry: Sendable, Equatable {
    package enum Operation: String, Sendable, Equatable {
        case put = "PUT"
        case delete = "DEL"
        case purge = "PURGE"
    }

    package var key: String
    package var value: [UInt8]
    package var operation: Operation
    /// The stream sequence of this entry; 0 if the message did not say (a plain MSG).
    package var revision: UInt64
    /// Entries still pending for the watch after this one (0: caught up); nil for a direct get.
    package var pending: UInt64?
    /// When the entry was stored, in nanoseconds since 1970, when the message said.
    package var timestamp: UInt64?

    /// The entry `message` carries for `bucket`; nil for a status message (see
    /// `JetStreamPushStatus`), another bucket's subject or an unknown operation.
    package init?(_ message: NATSMessage, bucket: KVBucketConfiguration) {
        guard message.status == nil else { return nil }
        let subject = message.value(ofHeader: "Nats-Subject") ?? message.subject
        guard let key = bucket.key(fromSubject: subject) else { return nil }
        switch message.value(ofHeader: "KV-Operation") {
        case nil, "PUT"?: operation = .put
        case "DEL"?: operation = .delete
        case "PURGE"?: operation = .purge
        default: return nil
        }
        self.key = key
        value = Array(message.payload)
        if let sequence = message.value(ofHeader: "Nats-Sequence").flatMap({ UInt64($0) }) {
            revision = sequence
        } else if let reply = message.replyTo, let metadata = JetStreamAckMetadata(replySubject: reply) {
            revision = metadata.streamSequence
            pending = metadata.pending
            timestamp = metadata.timestamp
        } else {
            revision = 0
        }
    }

    package init(key: String, value: [UInt8], operation: Operation, revision: UInt64, pending: UInt64? = nil, timestamp: UInt64? = nil) {
        self.key = key
        self.value = value
        self.operation = operation
        self.revision = revision
        self.pending = pending
        self.timestamp = timestamp
    }
}
