/// The push consumer behind a KV watch (nats-io ADR-8, as nats.go's `Watch` creates it): an
/// ephemeral consumer delivering to an inbox the caller subscribed to first, with no acks,
/// flow control and idle heartbeats, kept in memory.
///
/// Sequence: SUB the `deliverSubject`; request `KVBucketConfiguration.consumerCreateSubject`
/// with `consumerCreateRequest()` (the reply, decoded by `JetStreamResponse.consumer(_:)`,
/// says how many entries are pending: the initial state); then every message on the inbox is
/// a `KVEntry` or a `JetStreamPushStatus` (answer flow control, note heartbeats). The server
/// removes the consumer a few seconds after the inbox loses its subscriber.
package struct KVWatchConfiguration: Sendable, Equatable {
    package enum DeliverPolicy: String, Sendable, Equatable {
        /// The latest entry of each key, then every change (a watch's usual start).
        case lastPerSubject = "last_per_subject"
        /// Only changes from now on.
        case new
        /// Every entry kept (history), then every change.
        case all
    }

    package let bucket: KVBucketConfiguration
    /// The inbox the entries are pushed to (a literal subject this connection subscribes to).
    package let deliverSubject: String
    /// Keys watched: `$KV.<bucket>.>` for all, or one key's subject.
    package var filterSubject: String
    package var deliverPolicy: DeliverPolicy = .lastPerSubject
    /// How long the consumer may stay silent before it sends a `100 Idle Heartbeat`.
    package var idleHeartbeat: Duration = .seconds(5)
    /// Only headers, no values (`Nats-Msg-Size` gives the size): for watching keys alone.
    package var headersOnly = false

    package init(bucket: KVBucketConfiguration, deliverSubject: String, key: String? = nil) throws(NATSProtocolError) {
        if let reason = NATSSubject.problem(deliverSubject, wildcards: false) { throw .invalidSubject(deliverSubject, reason: reason) }
        self.bucket = bucket
        self.deliverSubject = deliverSubject
        self.filterSubject = try key.map { key throws(NATSProtocolError) in try bucket.subject(forKey: key) } ?? bucket.allKeys
    }

    struct Request: Encodable {
        struct Config: Encodable {
            var deliver_policy: String
            var ack_policy = "none"
            var filter_subject: String
            var flow_control = true
            var idle_heartbeat: Int64
            var deliver_subject: String
            var mem_storage = true
            var num_replicas = 1
            var replay_policy = "instant"
            var headers_only: Bool?
        }
        var stream_name: String
        var config: Config
    }

    /// The JSON body for `KVBucketConfiguration.consumerCreateSubject` (keys sorted):
    /// `{"config":{"ack_policy":"none","deliver_policy":…,"deliver_subject":…,"filter_subject":…,
    /// "flow_control":true,"idle_heartbeat":<ns>,"mem_storage":true,"num_replicas":1,
    /// "replay_policy":"instant"},"stream_name":"KV_<bucket>"}`.
    package func consumerCreateRequest() -> [UInt8] {
        JetStreamJSON.encode(Request(
            stream_name: bucket.streamName,
            config: .init(
                deliver_policy: deliverPolicy.rawValue, filter_subject: filterSubject,
                idle_heartbeat: KVBucketConfiguration.nanoseconds(idleHeartbeat), deliver_subject: deliverSubject,
                headers_only: headersOnly ? true : nil
            )
        ))
    }
}
