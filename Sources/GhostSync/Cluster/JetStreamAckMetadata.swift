/// What a JetStream push message's reply (ack) subject says about it (nats-io ADR-15).
///
/// - v1 (nats-server 2.9): `$JS.ACK.<stream>.<consumer>.<delivered>.<stream seq>.<consumer seq>.<timestamp>.<pending>`
/// - v2 (2.10 and later): `$JS.ACK.<domain>.<account hash>.<stream>.<consumer>.<delivered>.<stream seq>.<consumer seq>.<timestamp>.<pending>[.<token>]`,
///   domain `_` when there is none.
package struct JetStreamAckMetadata: Sendable, Equatable {
    package var domain: String?
    package var stream: String
    package var consumer: String
    /// How many times this message has been delivered to this consumer (1 without redelivery).
    package var delivered: UInt64
    /// The message's sequence in the stream: for a KV entry, its revision.
    package var streamSequence: UInt64
    package var consumerSequence: UInt64
    /// When the message was stored, in nanoseconds since 1970.
    package var timestamp: UInt64
    /// Messages still to be delivered after this one: 0 once a watch has caught up.
    package var pending: UInt64

    package init?(replySubject: some StringProtocol) {
        let tokens = replySubject.split(separator: ".", omittingEmptySubsequences: false)
        guard tokens.count >= 9, tokens[0] == "$JS", tokens[1] == "ACK" else { return nil }
        let first: Int  // index of the stream token
        switch tokens.count {
        case 9:
            domain = nil
            first = 2
        case 11, 12:
            domain = tokens[2] == "_" || tokens[2].isEmpty ? nil : String(tokens[2])
            first = 4
        default:
            return nil
        }
        guard let delivered = UInt64(tokens[first + 2]), let streamSequence = UInt64(tokens[first + 3]),
              let consumerSequence = UInt64(tokens[first + 4]), let timestamp = UInt64(tokens[first + 5]),
              let pending = UInt64(tokens[first + 6]) else { return nil }
        stream = String(tokens[first])
        consumer = String(tokens[first + 1])
        self.delivered = delivered
        self.streamSequence = streamSequence
        self.consumerSequence = consumerSequence
        self.timestamp = timestamp
        self.pending = pending
    }
}
