#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// A JetStream key-value bucket as nats-io ADR-8 defines it: a stream `KV_<bucket>` on the
/// subjects `$KV.<bucket>.>`, where each key is one subject and its latest message its value.
/// This type builds the requests and headers; the caller sends them (HPUB/PUB with a reply
/// inbox) and decodes the replies with `JetStreamResponse`.
///
/// | act | subject | headers | payload |
/// | --- | --- | --- | --- |
/// | create the bucket | `streamCreateSubject` | — | `streamCreateRequest()` |
/// | put | `subject(forKey:)` | — | value |
/// | create if absent | `subject(forKey:)` | `createHeaders` | value |
/// | update if unchanged | `subject(forKey:)` | `updateHeaders(revision:)` | value |
/// | delete | `subject(forKey:)` | `deleteHeaders` | empty |
/// | purge (delete, drop history) | `subject(forKey:)` | `purgeHeaders` | empty |
/// | get (direct) | `directGetSubject(forKey:)` | — | empty; reply is the message or a `404` status |
///
/// Puts and deletes are answered (to the reply subject) with a PubAck `{"stream":…,"seq":…}` or
/// an API error; the `seq` is the key's new revision.
package struct KVBucketConfiguration: Sendable, Equatable {
    package enum Storage: String, Sendable, Equatable { case file, memory }

    /// `[A-Za-z0-9_-]+`.
    package let bucket: String
    /// Values kept per key (1 = latest only; at most 64 in ADR-8).
    package var history: Int = 1
    /// Copies of the stream across the cluster (1, or 3 on a 3-server cluster).
    package var replicas: Int = 1
    /// Entries older than this are removed (0: never). Removal sends watchers no delete.
    package var ttl: Duration = .zero
    package var storage: Storage = .file
    /// Largest value, or -1 for the server's limit.
    package var maxValueSize: Int = -1

    package init(bucket: String, history: Int = 1, replicas: Int = 1, ttl: Duration = .zero, storage: Storage = .file) throws(NATSProtocolError) {
        guard NATSSubject.isPlainName(bucket) else { throw .invalidSubject(bucket, reason: "a bucket name is [A-Za-z0-9_-]+") }
        guard (1...64).contains(history) else { throw .invalidSubject(bucket, reason: "history must be 1...64") }
        guard (1...5).contains(replicas) else { throw .invalidSubject(bucket, reason: "replicas must be 1...5") }
        self.bucket = bucket
        self.history = history
        self.replicas = replicas
        self.ttl = ttl
        self.storage = storage
    }

    /// `KV_<bucket>`.
    package var streamName: String { "KV_\(bucket)" }
    /// `$KV.<bucket>.>`: the stream's subjects, and a watch's filter for every key.
    package var allKeys: String { "$KV.\(bucket).>" }
    /// `$JS.API.STREAM.CREATE.KV_<bucket>`. Creating again with the same configuration succeeds
    /// (idempotent); with a different one fails (`err_code` 10058).
    package var streamCreateSubject: String { "$JS.API.STREAM.CREATE.\(streamName)" }
    /// `$JS.API.STREAM.INFO.KV_<bucket>`: whether the bucket exists (error 10059 if not).
    package var streamInfoSubject: String { "$JS.API.STREAM.INFO.\(streamName)" }
    /// `$JS.API.STREAM.DELETE.KV_<bucket>`: removes the bucket.
    package var streamDeleteSubject: String { "$JS.API.STREAM.DELETE.\(streamName)" }
    /// `$JS.API.CONSUMER.CREATE.KV_<bucket>`: where a watch's consumer is created.
    package var consumerCreateSubject: String { "$JS.API.CONSUMER.CREATE.\(streamName)" }

    /// `$KV.<bucket>.<key>`: where a key's values are published. `key` must be a valid KV key
    /// (a room's `NATSSubject.token(forRoom:)` always is).
    package func subject(forKey key: String) throws(NATSProtocolError) -> String {
        guard Self.isValidKey(key) else { throw .invalidSubject(key, reason: "a KV key is [-/_=.a-zA-Z0-9]+ without leading, trailing or doubled '.'") }
        return "$KV.\(bucket).\(key)"
    }

    /// `$JS.API.DIRECT.GET.KV_<bucket>.$KV.<bucket>.<key>`: a request (empty payload) answered
    /// with the key's last message, its headers carrying `Nats-Stream`, `Nats-Subject`,
    /// `Nats-Sequence`, `Nats-Time-Stamp` (and `KV-Operation` for a delete marker), or with a
    /// `404` status when the key has no message.
    package func directGetSubject(forKey key: String) throws(NATSProtocolError) -> String {
        "$JS.API.DIRECT.GET.\(streamName).\(try subject(forKey: key))"
    }

    /// The key of a `$KV.<bucket>.<key>` subject; nil for another bucket or subject.
    package func key(fromSubject subject: some StringProtocol) -> String? {
        let head = "$KV.\(bucket)."
        guard subject.hasPrefix(head), subject.count > head.count else { return nil }
        return String(subject.dropFirst(head.count))
    }

    /// Whether `key` is a KV key: `[-/_=.a-zA-Z0-9]+`, no empty token, not starting `_kv`.
    package static func isValidKey(_ key: String) -> Bool {
        guard !key.isEmpty, !key.hasPrefix("."), !key.hasSuffix("."), !key.contains(".."), !key.hasPrefix("_kv") else { return false }
        return key.utf8.allSatisfy { byte in
            (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A)
                || byte == UInt8(ascii: "-") || byte == UInt8(ascii: "/") || byte == UInt8(ascii: "_")
                || byte == UInt8(ascii: "=") || byte == UInt8(ascii: ".")
        }
    }

    // MARK: Headers

    /// Create if absent: the put succeeds only if the key has no message at all
    /// (`Nats-Expected-Last-Subject-Sequence: 0`); otherwise the server answers
    /// `wrong last sequence: N` (err_code 10071), N being the key's revision. After a delete the
    /// key's last message is the delete marker, so this refuses too: create over a marker with
    /// `updateHeaders(revision:)` of the marker's revision (what nats.go's `Create` does).
    package static let createHeaders: [(name: String, value: String)] = [("Nats-Expected-Last-Subject-Sequence", "0")]

    /// Update if unchanged: succeeds only if the key's latest revision is `revision`.
    package static func updateHeaders(revision: UInt64) -> [(name: String, value: String)] {
        [("Nats-Expected-Last-Subject-Sequence", String(revision))]
    }

    /// A delete marker (empty payload): watchers see `.delete`; history is kept.
    package static let deleteHeaders: [(name: String, value: String)] = [("KV-Operation", "DEL")]

    /// A purge marker (empty payload): like a delete, and drops the key's earlier messages.
    package static let purgeHeaders: [(name: String, value: String)] = [("KV-Operation", "PURGE"), ("Nats-Rollup", "sub")]

    // MARK: Requests

    struct StreamConfig: Encodable {
        var name: String
        var subjects: [String]
        var retention = "limits"
        var max_consumers = -1
        var max_msgs = -1
        var max_bytes = -1
        var max_age: Int64
        var max_msgs_per_subject: Int
        var max_msg_size: Int
        var storage: String
        var discard = "new"
        var num_replicas: Int
        var duplicate_window: Int64
        var allow_rollup_hdrs = true
        var deny_delete = true
        var deny_purge = false
        var allow_direct = true
    }

    /// The JSON body for `streamCreateSubject`, as nats.go's `CreateKeyValue` sends it (keys
    /// sorted): limits retention, `discard: new`, `deny_delete`, `allow_rollup_hdrs`,
    /// `allow_direct`, `max_msgs_per_subject` = history, durations in nanoseconds, the
    /// duplicate window 2 minutes or the TTL if shorter.
    package func streamCreateRequest() -> [UInt8] {
        let ttlNanoseconds = Self.nanoseconds(ttl)
        let twoMinutes: Int64 = 120_000_000_000
        let config = StreamConfig(
            name: streamName, subjects: [allKeys], max_age: ttlNanoseconds, max_msgs_per_subject: history,
            max_msg_size: maxValueSize, storage: storage.rawValue, num_replicas: replicas,
            duplicate_window: ttlNanoseconds > 0 && ttlNanoseconds < twoMinutes ? ttlNanoseconds : twoMinutes
        )
        return JetStreamJSON.encode(config)
    }

    static func nanoseconds(_ duration: Duration) -> Int64 {
        let (seconds, attoseconds) = duration.components
        return seconds * 1_000_000_000 + attoseconds / 1_000_000_000
    }
}

/// JSON for JetStream API requests: sorted keys and unescaped slashes, so a request's bytes are
/// stable and readable in a trace.
enum JetStreamJSON {
    static func encode(_ value: some Encodable) -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        // Encoding these plain structs of strings, integers and booleans cannot fail.
        return (try? Array(encoder.encode(value))) ?? []
    }
}
