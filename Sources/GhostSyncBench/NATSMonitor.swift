/// A NATS server's message counters as its monitoring endpoint's `/varz` shows them
/// (`nats-server -m PORT`).
public struct NATSMessageCounts: Sendable, Equatable {
    /// `in_msgs`: messages the server received from its clients (their publishes).
    public var inMessages = 0
    /// `out_msgs`: messages the server sent to its clients (one per subscriber reached).
    public var outMessages = 0

    public init(inMessages: Int = 0, outMessages: Int = 0) {
        self.inMessages = inMessages
        self.outMessages = outMessages
    }

    static func + (left: NATSMessageCounts, right: NATSMessageCounts) -> NATSMessageCounts {
        NATSMessageCounts(inMessages: left.inMessages + right.inMessages, outMessages: left.outMessages + right.outMessages)
    }

    static func - (left: NATSMessageCounts, right: NATSMessageCounts) -> NATSMessageCounts {
        NATSMessageCounts(inMessages: left.inMessages - right.inMessages, outMessages: left.outMessages - right.outMessages)
    }
}

/// Reads NATS servers' `/varz`.
enum NATSMonitor {
    /// `in_msgs` and `out_msgs` summed over the servers at `addresses` (host:port each).
    static func scrape(_ addresses: [String]) throws(BenchError) -> NATSMessageCounts {
        var total = NATSMessageCounts()
        for address in addresses {
            let text = try HTTPGet.text(path: "/varz", from: address, endpoint: "the NATS monitoring endpoint")
            guard let counts = parse(text) else { throw BenchError("no in_msgs / out_msgs in \(address)/varz (not a NATS monitoring port?)") }
            total = total + counts
        }
        return total
    }

    /// The top-level `"in_msgs"` and `"out_msgs"` numbers of a `/varz` answer (JSON; the
    /// first occurrence of each key, which is the server's own: nested objects come later).
    static func parse(_ text: String) -> NATSMessageCounts? {
        func number(_ key: String) -> Int? {
            guard let found = text.firstRange(of: "\"\(key)\"") else { return nil }
            let rest = text[found.upperBound...].drop { $0 == " " || $0 == ":" || $0 == "\t" }
            return Int(rest.prefix { $0.isNumber })
        }
        guard let inMessages = number("in_msgs"), let outMessages = number("out_msgs") else { return nil }
        return NATSMessageCounts(inMessages: inMessages, outMessages: outMessages)
    }
}
