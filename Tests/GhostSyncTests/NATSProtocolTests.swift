import Testing
@testable import GhostSync

/// The NATS protocol layer without sockets: the parser over every split of a mixed stream and
/// every error, the command encoders byte for byte (written out by hand from the protocol
/// docs), subjects and room tokens, and the JetStream KV codec.
@Suite struct NATSProtocolTests {
    // MARK: Parser

    static let info = #"INFO {"server_id":"NCXYZ","server_name":"n1","version":"2.9.10","proto":1,"go":"go1.19","host":"127.0.0.1","port":4222,"headers":true,"max_payload":1048576,"jetstream":true,"client_id":7,"client_ip":"127.0.0.1","cluster":"relay","connect_urls":["127.0.0.1:4223"],"ldm":false,"unknown_field":{"x":[1,2]}}"# + "\r\n"

    static var expectedInfo: NATSServerInfo {
        var info = NATSServerInfo(serverID: "NCXYZ", maxPayload: 1_048_576)
        info.serverName = "n1"
        info.version = "2.9.10"
        info.proto = 1
        info.host = "127.0.0.1"
        info.port = 4222
        info.headers = true
        info.jetStream = true
        info.clientID = 7
        info.clientIP = "127.0.0.1"
        info.cluster = "relay"
        info.connectURLs = ["127.0.0.1:4223"]
        info.lameDuckMode = false
        return info
    }

    /// A stream with every operation: INFO, MSG (with and without reply, empty payload, payload
    /// holding CR LF), HMSG (no status, repeated headers, 503 status, 100 with description and
    /// reply), PING, PONG, +OK, -ERR; odd whitespace and lowercase operation names.
    static let mixed: [UInt8] = Array((info
        + "MSG ghost.room.6c6f626279 1 5\r\nhello\r\n"
        + "PING\r\n"
        + "MSG a.b 22 _INBOX.r.1 0\r\n\r\n"
        + "HMSG a.b 3 32 35\r\nNATS/1.0\r\nA: 1\r\nB:two \r\nA: 3\r\n\r\nxyz\r\n"
        + "+OK\r\n"
        + "HMSG _INBOX.r.2 4 16 16\r\nNATS/1.0 503\r\n\r\n\r\n"
        + "msg\tx.y \t 5  4\r\n\r\n\r\n\r\n"
        + "-ERR 'Invalid Subject'\r\n"
        + "HMSG _INBOX.w 6 $JS.FC.KV_rooms.abc.1 36 36\r\nNATS/1.0 100 FlowControl Request\r\n\r\n\r\n"
        + "pong\r\n"
        + "HMSG a 18446744073709551615 12 13\r\nNATS/1.0\r\n\r\n!\r\n").utf8)

    static let expectedMixed: [NATSReceived] = [
        .info(expectedInfo),
        .message(.init(subject: "ghost.room.6c6f626279", sid: 1, payload: Array("hello".utf8))),
        .ping,
        .message(.init(subject: "a.b", sid: 22, replyTo: "_INBOX.r.1", payload: [])),
        .message(.init(subject: "a.b", sid: 3, headers: [.init("A", "1"), .init("B", "two"), .init("A", "3")], payload: Array("xyz".utf8))),
        .ok,
        .message(.init(subject: "_INBOX.r.2", sid: 4, status: 503, headers: [], payload: [])),
        .message(.init(subject: "x.y", sid: 5, payload: Array("\r\n\r\n".utf8))),
        .error("Invalid Subject"),
        .message(.init(subject: "_INBOX.w", sid: 6, replyTo: "$JS.FC.KV_rooms.abc.1", status: 100, statusDescription: "FlowControl Request", headers: [], payload: [])),
        .pong,
        .message(.init(subject: "a", sid: UInt64.max, headers: [], payload: Array("!".utf8))),
    ]

    /// Feeds `chunks` in order; returns every operation (owned copies).
    static func parse(_ chunks: [ArraySlice<UInt8>], maxPayload: Int = 1 << 20, parser: inout NATSParser) throws(NATSProtocolError) -> [NATSReceived] {
        var seen: [NATSReceived] = []
        for chunk in chunks {
            let result = Array(chunk).withUnsafeBytes { raw in
                Result { () throws(NATSProtocolError) in try parser.feed(raw) { seen.append(NATSReceived($0)) } }
            }
            try result.get()
        }
        return seen
    }

    static func parse(_ chunks: [ArraySlice<UInt8>], maxPayload: Int = 1 << 20) throws(NATSProtocolError) -> [NATSReceived] {
        var parser = NATSParser(maxPayload: maxPayload)
        let seen = try parse(chunks, parser: &parser)
        #expect(!parser.hasPendingBytes)
        return seen
    }

    static func parse(_ text: String, maxPayload: Int = 1 << 20) throws(NATSProtocolError) -> [NATSReceived] {
        try parse([Array(text.utf8)[...]], maxPayload: maxPayload)
    }

    @Test func wholeStreamInOneRead() throws {
        #expect(try Self.parse([Self.mixed[...]]) == Self.expectedMixed)
    }

    @Test func everySplitInTwo() throws {
        for split in 0...Self.mixed.count {
            let seen = try Self.parse([Self.mixed[..<split], Self.mixed[split...]])
            #expect(seen == Self.expectedMixed, "split at \(split)")
        }
    }

    @Test func oneByteAtATimeAndEveryChunkSize() throws {
        for size in 1...80 {
            let chunks = stride(from: 0, to: Self.mixed.count, by: size).map { Self.mixed[$0..<min($0 + size, Self.mixed.count)] }
            #expect(try Self.parse(chunks) == Self.expectedMixed, "chunks of \(size)")
        }
    }

    @Test func manySplitsInThree() throws {
        // Every pair of split points on a 5-byte grid, offset so the grid crosses every
        // operation boundary at several phases.
        for phase in 0..<5 {
            for first in stride(from: phase, through: Self.mixed.count, by: 5) {
                for second in stride(from: first, through: Self.mixed.count, by: 11) {
                    let seen = try Self.parse([Self.mixed[..<first], Self.mixed[first..<second], Self.mixed[second...]])
                    #expect(seen == Self.expectedMixed, "splits at \(first), \(second)")
                }
            }
        }
    }

    @Test func largePayloadOverManyReads() throws {
        let payload = (0..<200_000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        let stream = Array("MSG big 9 \(payload.count)\r\n".utf8) + payload + Array("\r\nPING\r\n".utf8)
        let chunks = stride(from: 0, to: stream.count, by: 4093).map { stream[$0..<min($0 + 4093, stream.count)] }
        #expect(try Self.parse(chunks) == [.message(.init(subject: "big", sid: 9, payload: payload)), .ping])
    }

    @Test func wholeMessagesAreHandedOutWithoutCopying() throws {
        var parser = NATSParser(maxPayload: 1024)
        var inside = 0
        var messages = 0
        try Self.mixed.withUnsafeBytes { raw in
            try parser.feed(raw) { message in
                guard case .message(let message) = message else { return }
                messages += 1
                let range = UInt(bitPattern: raw.baseAddress!)...UInt(bitPattern: raw.baseAddress! + raw.count)
                if range.contains(UInt(bitPattern: message.payload.baseAddress ?? raw.baseAddress!)),
                   range.contains(UInt(bitPattern: message.subjectBytes.baseAddress!)) {
                    inside += 1
                }
            }
        }
        #expect(messages == 7)
        #expect(inside == messages)
        #expect(!parser.hasPendingBytes)
        #expect(parser.pending.capacity == 0)
    }

    @Test func onlyTheIncompleteMessageIsKept() throws {
        var parser = NATSParser(maxPayload: 1024)
        let text = Array("PING\r\nMSG a 1 10\r\n01234".utf8)
        let seen = try Self.parse([text[...]], parser: &parser)
        #expect(seen == [.ping])
        #expect(parser.pending == Array("MSG a 1 10\r\n01234".utf8))
        let rest = try Self.parse([Array("56789\r\n".utf8)[...]], parser: &parser)
        #expect(rest == [.message(.init(subject: "a", sid: 1, payload: Array("0123456789".utf8)))])
        #expect(parser.pending.isEmpty)
    }

    @Test func zeroBytePayloads() throws {
        #expect(try Self.parse("MSG a 1 0\r\n\r\n") == [.message(.init(subject: "a", sid: 1, payload: []))])
        #expect(try Self.parse("HMSG a 1 12 12\r\nNATS/1.0\r\n\r\n\r\n") == [.message(.init(subject: "a", sid: 1, headers: [], payload: []))])
        // Split between the line and its (empty) payload's CR LF.
        #expect(try Self.parse([Array("MSG a 1 0\r\n".utf8)[...], Array("\r\n".utf8)[...]]) == [.message(.init(subject: "a", sid: 1, payload: []))])
    }

    @Test func headerLookupIsCaseInsensitiveAndKeepsRepeats() throws {
        let stream = Array("HMSG a 1 53 53\r\nNATS/1.0\r\nKV-Operation: DEL\r\nkv-operation:  PURGE\r\n\r\n\r\n".utf8)
        var parser = NATSParser(maxPayload: 1024)
        var values: [String] = []
        var first: String?
        try stream.withUnsafeBytes { raw in
            try parser.feed(raw) { message in
                guard case .message(let message) = message else { return }
                values = message.values(ofHeader: "KV-OPERATION")
                first = message.value(ofHeader: "kv-operation")
            }
        }
        #expect(values == ["DEL", "PURGE"])
        #expect(first == "DEL")
    }

    @Test func infoUpdatesAndLameDuckMode() throws {
        let seen = try Self.parse(#"INFO {"server_id":"A","max_payload":64,"ldm":true,"connect_urls":["10.0.0.1:4222","10.0.0.2:4222"]}"# + "\r\n")
        var expected = NATSServerInfo(serverID: "A", maxPayload: 64)
        expected.lameDuckMode = true
        expected.connectURLs = ["10.0.0.1:4222", "10.0.0.2:4222"]
        #expect(seen == [.info(expected)])
    }

    @Test func errorTextWithoutQuotes() throws {
        #expect(try Self.parse("-ERR 'Authorization Violation'\r\n-ERR\r\n-ERR plain words\r\n") == [.error("Authorization Violation"), .error(""), .error("plain words")])
    }

    // MARK: Parser errors

    static func error(_ chunks: [ArraySlice<UInt8>], maxPayload: Int = 1 << 20) -> NATSProtocolError? {
        do {
            _ = try parse(chunks, maxPayload: maxPayload)
            return nil
        } catch {
            return error
        }
    }

    static func error(_ text: String, maxPayload: Int = 1 << 20) -> NATSProtocolError? {
        error([Array(text.utf8)[...]], maxPayload: maxPayload)
    }

    /// The error, also when the stream arrives one byte at a time.
    static func errorBytewise(_ text: String, maxPayload: Int = 1 << 20) -> NATSProtocolError? {
        let whole = error(text, maxPayload: maxPayload)
        let bytes = Array(text.utf8)
        let split = error(bytes.indices.map { bytes[$0...$0] }, maxPayload: maxPayload)
        #expect(whole == split, "same error whatever the split")
        return whole
    }

    @Test func controlLineCap() throws {
        // "-ERR '" + padding + "'" of exactly 4096 bytes is fine; 4097 is not.
        let exact = "-ERR '" + String(repeating: "x", count: 4096 - 7) + "'"
        #expect(exact.utf8.count == 4096)
        #expect(try Self.parse(exact + "\r\n") == [.error(String(repeating: "x", count: 4089))])
        let over = "-ERR '" + String(repeating: "x", count: 4097 - 7) + "'"
        #expect(Self.errorBytewise(over + "\r\n") == .controlLineTooLong(limit: 4096))
        // Found before the line ends: 4098 bytes without LF can no longer be a line.
        let endless = Array(String(repeating: "M", count: 4098).utf8)
        #expect(Self.error([endless[...]]) == .controlLineTooLong(limit: 4096))
        #expect(Self.error([endless[..<4000], endless[4000...]]) == .controlLineTooLong(limit: 4096))
        // 4097 bytes without LF may still be 4096 bytes and a CR.
        var parser = NATSParser(maxPayload: 1024)
        #expect(try Self.parse([Array(repeating: UInt8(ascii: "x"), count: 4097)[...]], parser: &parser) == [])
        #expect(parser.pending.count == 4097)
    }

    @Test func payloadOverTheCapFailsBeforeItArrives() throws {
        var parser = NATSParser(maxPayload: 1024)
        let line = Array("MSG a 1 1025\r\n".utf8)
        #expect(throws: NATSProtocolError.payloadTooLarge(size: 1025, limit: 1024)) {
            _ = try Self.parse([line[...]], parser: &parser)
        }
        let atTheCap = Array("MSG a 1 1024\r\n".utf8) + Array(repeating: 7, count: 1024) + [13, 10]
        #expect(try Self.parse([atTheCap[...]], maxPayload: 1024).count == 1)
        #expect(try Self.parse("MSG a 1 4\r\nabcd\r\n", maxPayload: 4).count == 1)
        // HMSG: the cap covers headers and payload together.
        #expect(Self.errorBytewise("HMSG a 1 12 1025\r\n", maxPayload: 1024) == .payloadTooLarge(size: 1025, limit: 1024))
    }

    @Test func malformedMessageArguments() {
        for line in ["MSG a 1\r\n", "MSG a\r\n", "MSG\r\n", "MSG a b 3\r\n", "MSG a 1 -3\r\n", "MSG a 1 +3\r\n", "MSG a 1 x y 3\r\n",
                     "MSG a 1 3x\r\n", "MSG a 1 99999999999999999999\r\n", "MSG a 18446744073709551616 1\r\n",
                     "HMSG a 1 3\r\n", "HMSG a 1 20 10\r\n", "HMSG a 1 5 10\r\n", "HMSG a 1 r 12 12 x\r\n", "HMSG a x 12 12\r\n",
                     "PING x\r\n", "PONG 1\r\n", "+OK x\r\n", "INFO\r\n"] {
            let error = Self.errorBytewise(line)
            guard case .malformedArguments? = error else {
                Issue.record("\(line.debugDescription): \(String(describing: error))")
                continue
            }
        }
    }

    @Test func otherStreamErrors() {
        #expect(Self.errorBytewise("MSG a 1 3\r\nabcd\r\n") == .missingPayloadTerminator)
        #expect(Self.errorBytewise("MSG a 1 3\r\nabc\n\r") == .missingPayloadTerminator)
        #expect(Self.errorBytewise("PING\n") == .missingCarriageReturn)
        #expect(Self.errorBytewise("MSG a 1 3\nabc\r\n") == .missingCarriageReturn)
        #expect(Self.errorBytewise("\r\n") == .unknownOperation(""))
        #expect(Self.errorBytewise("PUB a 1\r\n") == .unknownOperation("PUB"))
        #expect(Self.errorBytewise("PINGX\r\n") == .unknownOperation("PINGX"))
        guard case .invalidInfo? = Self.errorBytewise("INFO {\"server_id\":1}\r\n") else {
            Issue.record("INFO with a bad field")
            return
        }
        guard case .invalidInfo? = Self.errorBytewise("INFO {\"max_payload\":1}\r\n") else {
            Issue.record("INFO without server_id")
            return
        }
    }

    @Test func malformedHeaderBlocks() {
        for (block, why) in [
            ("XATS/1.0\r\n\r\n", "not NATS/1.0"),
            ("NATS/1.0\r\nA 1\r\n\r\n", "no colon"),
            ("NATS/1.0\r\n: 1\r\n\r\n", "empty name"),
            ("NATS/1.0\r\nA B: 1\r\n\r\n", "space in name"),
            ("NATS/1.0 50\r\n\r\n", "two-digit status"),
            ("NATS/1.0 5030\r\n\r\n", "four-digit status"),
            ("NATS/1.0503\r\n\r\n", "no space before status"),
            ("NATS/1.0\r\n\r\nA: 1\r\n\r\n", "blank line inside"),
            ("NATS/1.0\r\nA: 1\n\r\n\r\n", "bare LF"),
            ("NATS/1.0\r\nA: 1\r\nxx", "no blank line at the end"),
        ] {
            let length = block.utf8.count
            let error = Self.errorBytewise("HMSG a 1 \(length) \(length)\r\n\(block)\r\n")
            guard case .malformedHeaders? = error else {
                Issue.record("\(why): \(String(describing: error))")
                continue
            }
        }
    }

    @Test func statusLines() throws {
        let seen = try Self.parse("HMSG a 1 31 31\r\nNATS/1.0 100 Idle Heartbeat\r\n\r\n\r\nHMSG a 1 17 17\r\nNATS/1.0\t408 \r\n\r\n\r\n")
        #expect(seen == [
            .message(.init(subject: "a", sid: 1, status: 100, statusDescription: "Idle Heartbeat", headers: [], payload: [])),
            .message(.init(subject: "a", sid: 1, status: 408, headers: [], payload: [])),
        ])
    }

    // MARK: Encoders

    static func encoded(_ body: (inout [UInt8]) throws(NATSProtocolError) -> Void) throws(NATSProtocolError) -> String {
        var output: [UInt8] = []
        try body(&output)
        return String(decoding: output, as: UTF8.self)
    }

    @Test func connect() throws {
        #expect(try Self.encoded { output throws(NATSProtocolError) in try NATSCommand.connect(name: "relay-n1", echo: false, into: &output) }
            == #"CONNECT {"verbose":false,"pedantic":false,"name":"relay-n1","lang":"swift","version":"0.1.0","protocol":1,"headers":true,"no_responders":true,"echo":false}"# + "\r\n")
        #expect(try Self.encoded { output throws(NATSProtocolError) in try NATSCommand.connect(echo: true, headers: false, noResponders: false, verbose: true, pedantic: true, into: &output) }
            == #"CONNECT {"verbose":true,"pedantic":true,"lang":"swift","version":"0.1.0","protocol":1,"headers":false,"no_responders":false,"echo":true}"# + "\r\n")
        #expect(try Self.encoded { output throws(NATSProtocolError) in try NATSCommand.connect(name: "a\"b\\c\n\u{1}é", echo: false, into: &output) }
            .contains(#""name":"a\"b\\c\n\u0001é""#))
        #expect(throws: NATSProtocolError.invalidConnectOptions("no_responders needs headers")) {
            _ = try Self.encoded { output throws(NATSProtocolError) in try NATSCommand.connect(echo: false, headers: false, into: &output) }
        }
    }

    @Test func publish() throws {
        let hello = Array("hello".utf8)
        try hello.withUnsafeBytes { payload throws in
            #expect(try Self.encoded { output throws(NATSProtocolError) in try NATSCommand.publish(subject: "ghost.room.6c6f626279", payload: payload, into: &output) }
                == "PUB ghost.room.6c6f626279 5\r\nhello\r\n")
            #expect(try Self.encoded { output throws(NATSProtocolError) in try NATSCommand.publish(subject: Array("a.b".utf8), replyTo: Array("_INBOX.x.1".utf8), payload: payload, into: &output) }
                == "PUB a.b _INBOX.x.1 5\r\nhello\r\n")
        }
        #expect(try Self.encoded { output throws(NATSProtocolError) in try NATSCommand.publish(subject: "a", replyTo: "r", payload: UnsafeRawBufferPointer(start: nil, count: 0), into: &output) }
            == "PUB a r 0\r\n\r\n")
        // Appends after what the buffer holds.
        var output = Array("PING\r\n".utf8)
        try [UInt8]([0, 13, 10, 255]).withUnsafeBytes { payload in try NATSCommand.publish(subject: "x", payload: payload, into: &output) }
        #expect(output == Array("PING\r\nPUB x 4\r\n".utf8) + [0, 13, 10, 255] + [13, 10])
    }

    @Test func publishWithHeaders() throws {
        let headers: [(name: String, value: String)] = [("Relay-Node", "n1"), ("A", "1"), ("A", "2")]
        // Block: "NATS/1.0\r\n" 10 + "Relay-Node: n1\r\n" 16 + "A: 1\r\n" 6 + "A: 2\r\n" 6 + "\r\n" 2 = 40.
        try Array("hi".utf8).withUnsafeBytes { payload throws in
            #expect(try Self.encoded { output throws(NATSProtocolError) in try NATSCommand.publish(subject: "a.b", headers: headers, payload: payload, into: &output) }
                == "HPUB a.b 40 42\r\nNATS/1.0\r\nRelay-Node: n1\r\nA: 1\r\nA: 2\r\n\r\nhi\r\n")
            #expect(try Self.encoded { output throws(NATSProtocolError) in try NATSCommand.publish(subject: Array("$KV.rooms.6c".utf8), replyTo: Array("_INBOX.n.7".utf8), headers: KVBucketConfiguration.createHeaders, payload: payload, into: &output) }
                == "HPUB $KV.rooms.6c _INBOX.n.7 52 54\r\nNATS/1.0\r\nNats-Expected-Last-Subject-Sequence: 0\r\n\r\nhi\r\n")
        }
        #expect(try Self.encoded { output throws(NATSProtocolError) in try NATSCommand.publish(subject: "a", headers: [], payload: UnsafeRawBufferPointer(start: nil, count: 0), into: &output) }
            == "HPUB a 12 12\r\nNATS/1.0\r\n\r\n\r\n")
    }

    @Test func subscribeUnsubscribePingPong() throws {
        #expect(try Self.encoded { output throws(NATSProtocolError) in try NATSCommand.subscribe(subject: "ghost.room.*", sid: 7, into: &output) } == "SUB ghost.room.* 7\r\n")
        #expect(try Self.encoded { output throws(NATSProtocolError) in try NATSCommand.subscribe(subject: "a.>", queue: "workers", sid: UInt64.max, into: &output) }
            == "SUB a.> workers 18446744073709551615\r\n")
        #expect(try Self.encoded { output in NATSCommand.unsubscribe(sid: 7, into: &output) } == "UNSUB 7\r\n")
        #expect(try Self.encoded { output in NATSCommand.unsubscribe(sid: 0, max: 10, into: &output) } == "UNSUB 0 10\r\n")
        #expect(try Self.encoded { output in NATSCommand.ping(into: &output) } == "PING\r\n")
        #expect(try Self.encoded { output in NATSCommand.pong(into: &output) } == "PONG\r\n")
    }

    @Test func badSubjectsAreRefusedAndNothingIsWritten() {
        let payload = UnsafeRawBufferPointer(start: nil, count: 0)
        for subject in ["", "bad subject", "a..b", ".a", "a.", "a\tb", "a\r\nPUB x", "a.*", ">", "a.>", "*", "\u{7F}", "a\u{0}b"] {
            var output = Array("kept".utf8)
            #expect(throws: NATSProtocolError.self, "PUB \(subject.debugDescription)") { try NATSCommand.publish(subject: subject, payload: payload, into: &output) }
            #expect(throws: NATSProtocolError.self, "HPUB \(subject.debugDescription)") { try NATSCommand.publish(subject: subject, headers: [], payload: payload, into: &output) }
            #expect(throws: NATSProtocolError.self, "reply \(subject.debugDescription)") { try NATSCommand.publish(subject: "ok", replyTo: subject, payload: payload, into: &output) }
            #expect(output == Array("kept".utf8))
        }
        for subject in ["", "a b", "a..b", "a.>.b", ">.a", "a.", "a\nb"] {
            var output: [UInt8] = []
            #expect(throws: NATSProtocolError.self, "SUB \(subject.debugDescription)") { try NATSCommand.subscribe(subject: subject, sid: 1, into: &output) }
            #expect(output.isEmpty)
        }
        var output: [UInt8] = []
        #expect(throws: NATSProtocolError.self) { try NATSCommand.subscribe(subject: "a", queue: "two words", sid: 1, into: &output) }
        #expect(throws: NATSProtocolError.self) { try NATSCommand.subscribe(subject: "a", queue: "", sid: 1, into: &output) }
        #expect(output.isEmpty)
        // Wildcards as parts of tokens are literal characters.
        #expect(NATSSubject.isValid("a*b.c>d"))
        #expect(NATSSubject.isValid("a.*.>", wildcards: true))
        #expect(NATSSubject.isValid("ghost.room.é"))
    }

    @Test func badHeadersAreRefusedAndNothingIsWritten() {
        let payload = UnsafeRawBufferPointer(start: nil, count: 0)
        for header in [("", "v"), ("A:B", "v"), ("A B", "v"), ("A\u{1}", "v"), ("é", "v"), ("A", "line\r\nB: 2"), ("A", "x\ny"), ("A", "x\r")] {
            var output: [UInt8] = []
            #expect(throws: NATSProtocolError.self, "\(header)") { try NATSCommand.publish(subject: "a", headers: [header], payload: payload, into: &output) }
            #expect(output.isEmpty)
        }
    }

    @Test func decimalsWithoutStrings() {
        for value: UInt64 in [0, 9, 10, 12345, UInt64(UInt32.max), UInt64.max] {
            var output: [UInt8] = [1]
            NATSCommand.appendDecimal(value, to: &output)
            #expect(output == [1] + Array(String(value).utf8))
        }
    }

    // MARK: Subjects

    @Test func roomTokens() {
        #expect(NATSSubject.token(forRoom: "lobby") == "6c6f626279")
        #expect(NATSSubject.token(forRoom: "A.b c") == "412e622063")
        #expect(NATSSubject.token(forRoom: "") == "_")
        for room in ["lobby", "", "room with spaces.and.dots", "é🎮日本", "*>", "\u{0}\r\n", String(repeating: "z", count: NATSSubject.maxRoomIDBytes)] {
            let token = NATSSubject.token(forRoom: room)
            #expect(NATSSubject.roomID(fromToken: token) == room)
            #expect(NATSSubject.isValid("x.\(token).y"))
            #expect(KVBucketConfiguration.isValidKey(token))
        }
        for bad in ["", "6C", "6", "6g", "ff", "c3", "6c6f62627", "_kv"] {
            #expect(NATSSubject.roomID(fromToken: bad) == nil, "\(bad)")
        }
    }

    @Test func clusterSubjects() throws {
        let subjects = try ClusterSubjects()
        #expect(subjects.room("lobby") == "ghost.room.6c6f626279")
        #expect(subjects.allRooms == "ghost.room.*")
        #expect(subjects.roomID(fromRoomSubject: "ghost.room.6c6f626279") == "lobby")
        #expect(subjects.roomID(fromRoomSubject: "ghost.room.6c6f626279.sync") == nil)
        #expect(subjects.roomID(fromRoomSubject: "other.room.6c6f626279") == nil)
        #expect(try subjects.nodeHeartbeat("n1") == "ghost.node.n1.hb")
        #expect(subjects.allNodeHeartbeats == "ghost.node.*.hb")
        #expect(try subjects.inbox(node: "n-1") == "_INBOX.ghost.n-1")
        #expect(subjects.roomBucket == "ghost_rooms")
        #expect(try ClusterSubjects(prefix: "test.a1").roomBucket == "test_a1_rooms")
        #expect(throws: NATSProtocolError.self) { try subjects.nodeHeartbeat("n.1") }
        #expect(throws: NATSProtocolError.self) { try ClusterSubjects(prefix: "a..b") }
        #expect(throws: NATSProtocolError.self) { try ClusterSubjects(prefix: "a*") }
        // The longest allowed room ID still fits the control line of a sync request: the room's
        // subject and the longest inbox (a 64-byte node name in hex, a 64-bit incarnation).
        let room = String(repeating: "\u{10FFFF}", count: NATSSubject.maxRoomIDBytes / 4)
        let inbox = try subjects.inbox(node: String(repeating: "ff", count: 64)) + ".ffffffffffffffff.1023"
        let line = "HMSG \(subjects.room(room)) 18446744073709551615 \(inbox) 1234 1048576"
        #expect(line.utf8.count <= NATSParser.maxControlLine)
    }

    // MARK: JetStream KV

    @Test func bucketRequests() throws {
        let bucket = try KVBucketConfiguration(bucket: "rooms")
        #expect(bucket.streamName == "KV_rooms")
        #expect(bucket.streamCreateSubject == "$JS.API.STREAM.CREATE.KV_rooms")
        #expect(bucket.consumerCreateSubject == "$JS.API.CONSUMER.CREATE.KV_rooms")
        #expect(try bucket.subject(forKey: "6c6f626279") == "$KV.rooms.6c6f626279")
        #expect(try bucket.directGetSubject(forKey: "6c") == "$JS.API.DIRECT.GET.KV_rooms.$KV.rooms.6c")
        #expect(bucket.key(fromSubject: "$KV.rooms.6c") == "6c")
        #expect(bucket.key(fromSubject: "$KV.other.6c") == nil)
        #expect(String(decoding: bucket.streamCreateRequest(), as: UTF8.self)
            == #"{"allow_direct":true,"allow_rollup_hdrs":true,"deny_delete":true,"deny_purge":false,"discard":"new","duplicate_window":120000000000,"max_age":0,"max_bytes":-1,"max_consumers":-1,"max_msg_size":-1,"max_msgs":-1,"max_msgs_per_subject":1,"name":"KV_rooms","num_replicas":1,"retention":"limits","storage":"file","subjects":["$KV.rooms.>"]}"#)
        let replicated = try KVBucketConfiguration(bucket: "r-3", history: 5, replicas: 3, ttl: .seconds(30), storage: .memory)
        #expect(String(decoding: replicated.streamCreateRequest(), as: UTF8.self)
            == #"{"allow_direct":true,"allow_rollup_hdrs":true,"deny_delete":true,"deny_purge":false,"discard":"new","duplicate_window":30000000000,"max_age":30000000000,"max_bytes":-1,"max_consumers":-1,"max_msg_size":-1,"max_msgs":-1,"max_msgs_per_subject":5,"name":"KV_r-3","num_replicas":3,"retention":"limits","storage":"memory","subjects":["$KV.r-3.>"]}"#)
        #expect(throws: NATSProtocolError.self) { try KVBucketConfiguration(bucket: "a.b") }
        #expect(throws: NATSProtocolError.self) { try KVBucketConfiguration(bucket: "a", history: 65) }
        #expect(throws: NATSProtocolError.self) { try bucket.subject(forKey: "a b") }
        #expect(throws: NATSProtocolError.self) { try bucket.subject(forKey: "_kvx") }
        #expect(throws: NATSProtocolError.self) { try bucket.subject(forKey: "a..b") }
        #expect(KVBucketConfiguration.deleteHeaders.map(\.name) == ["KV-Operation"])
        #expect(KVBucketConfiguration.deleteHeaders.map(\.value) == ["DEL"])
        #expect(KVBucketConfiguration.purgeHeaders.map { "\($0.name): \($0.value)" } == ["KV-Operation: PURGE", "Nats-Rollup: sub"])
        #expect(KVBucketConfiguration.updateHeaders(revision: 42).map { "\($0.name): \($0.value)" } == ["Nats-Expected-Last-Subject-Sequence: 42"])
    }

    @Test func watchConsumerRequest() throws {
        let bucket = try KVBucketConfiguration(bucket: "rooms")
        let watch = try KVWatchConfiguration(bucket: bucket, deliverSubject: "_INBOX.ghost.n1.w1")
        #expect(String(decoding: watch.consumerCreateRequest(), as: UTF8.self)
            == #"{"config":{"ack_policy":"none","deliver_policy":"last_per_subject","deliver_subject":"_INBOX.ghost.n1.w1","filter_subject":"$KV.rooms.>","flow_control":true,"idle_heartbeat":5000000000,"mem_storage":true,"num_replicas":1,"replay_policy":"instant"},"stream_name":"KV_rooms"}"#)
        var one = try KVWatchConfiguration(bucket: bucket, deliverSubject: "_INBOX.x", key: "6c")
        one.deliverPolicy = .new
        one.idleHeartbeat = .milliseconds(500)
        one.headersOnly = true
        #expect(String(decoding: one.consumerCreateRequest(), as: UTF8.self)
            == #"{"config":{"ack_policy":"none","deliver_policy":"new","deliver_subject":"_INBOX.x","filter_subject":"$KV.rooms.6c","flow_control":true,"headers_only":true,"idle_heartbeat":500000000,"mem_storage":true,"num_replicas":1,"replay_policy":"instant"},"stream_name":"KV_rooms"}"#)
        #expect(throws: NATSProtocolError.self) { try KVWatchConfiguration(bucket: bucket, deliverSubject: "_INBOX.*") }
    }

    /// Parses `text` (one operation) and runs `body` on the message.
    static func withMessage<T>(_ text: String, _ body: (NATSMessage) -> T) throws -> T {
        var parser = NATSParser(maxPayload: 1 << 20)
        var result: T?
        try Array(text.utf8).withUnsafeBytes { raw in
            try parser.feed(raw) { message in
                if case .message(let message) = message { result = body(message) }
            }
        }
        return try #require(result)
    }

    static func msg(_ payload: String, subject: String = "_INBOX.r", reply: String? = nil) -> String {
        "MSG \(subject) 1 \(reply.map { $0 + " " } ?? "")\(payload.utf8.count)\r\n\(payload)\r\n"
    }

    static func hmsg(_ block: String, _ payload: String = "", subject: String = "_INBOX.r", reply: String? = nil) -> String {
        let length = block.utf8.count
        return "HMSG \(subject) 1 \(reply.map { $0 + " " } ?? "")\(length) \(length + payload.utf8.count)\r\n\(block)\(payload)\r\n"
    }

    @Test func jetStreamReplies() throws {
        #expect(try Self.withMessage(Self.msg(#"{"stream":"KV_rooms","seq":5}"#)) { JetStreamResponse.pubAck($0) }
            == .success(JetStreamPubAck(stream: "KV_rooms", sequence: 5)))
        #expect(try Self.withMessage(Self.msg(#"{"stream":"KV_rooms","domain":"hub","seq":6,"duplicate":true}"#)) { JetStreamResponse.pubAck($0) }
            == .success(JetStreamPubAck(stream: "KV_rooms", sequence: 6, duplicate: true, domain: "hub")))
        #expect(try Self.withMessage(Self.msg(#"{"error":{"code":400,"err_code":10071,"description":"wrong last sequence: 1"}}"#)) { JetStreamResponse.pubAck($0) }
            == .failure(.api(JetStreamAPIError(code: 400, errorCode: 10071, text: "wrong last sequence: 1"))))
        #expect(try Self.withMessage(Self.hmsg("NATS/1.0 503\r\n\r\n")) { JetStreamResponse.pubAck($0) } == .failure(.noResponders))
        guard case .failure(.invalidResponse)? = try Self.withMessage(Self.msg("not json"), { JetStreamResponse.pubAck($0) }) else {
            Issue.record("not json")
            return
        }
        let created = #"{"type":"io.nats.jetstream.api.v1.stream_create_response","config":{"name":"KV_rooms","subjects":["$KV.rooms.>"],"max_msgs_per_subject":1,"num_replicas":3},"created":"2026-01-01T00:00:00Z","state":{"messages":0,"last_seq":0},"did_create":true}"#
        let stream = try Self.withMessage(Self.msg(created)) { JetStreamResponse.stream($0) }.get()
        #expect(stream.config.name == "KV_rooms")
        #expect(stream.config.replicas == 3)
        #expect(stream.state?.messages == 0)
        let consumer = #"{"type":"io.nats.jetstream.api.v1.consumer_create_response","stream_name":"KV_rooms","name":"abc123","created":"x","config":{},"delivered":{"consumer_seq":0,"stream_seq":0},"num_pending":2}"#
        #expect(try Self.withMessage(Self.msg(consumer)) { JetStreamResponse.consumer($0) }
            == .success(JetStreamConsumerInfo(streamName: "KV_rooms", name: "abc123", pending: 2)))
        #expect(try Self.withMessage(Self.msg(#"{"type":"x","error":{"code":404,"err_code":10059,"description":"stream not found"}}"#)) { JetStreamResponse.consumer($0) }
            == .failure(.api(JetStreamAPIError(code: 404, errorCode: JetStreamAPIError.streamNotFound, text: "stream not found"))))
    }

    @Test func ackSubjects() {
        let v1 = JetStreamAckMetadata(replySubject: "$JS.ACK.KV_rooms.abc.1.5.3.1700000000000000000.2")
        #expect(v1?.stream == "KV_rooms")
        #expect(v1?.consumer == "abc")
        #expect(v1?.delivered == 1)
        #expect(v1?.streamSequence == 5)
        #expect(v1?.consumerSequence == 3)
        #expect(v1?.timestamp == 1_700_000_000_000_000_000)
        #expect(v1?.pending == 2)
        #expect(v1?.domain == nil)
        let v2 = JetStreamAckMetadata(replySubject: "$JS.ACK.hub.ACCHASH.KV_rooms.abc.2.7.4.1700000000000000001.0.XYZ")
        #expect(v2?.domain == "hub")
        #expect(v2?.stream == "KV_rooms")
        #expect(v2?.delivered == 2)
        #expect(v2?.streamSequence == 7)
        #expect(JetStreamAckMetadata(replySubject: "$JS.ACK._.H.S.C.1.2.3.4.5")?.domain == nil)
        for bad in ["$JS.ACK.S.C.1.2.3.4", "$JS.NAK.S.C.1.2.3.4.5", "$JS.ACK.S.C.x.2.3.4.5", "_INBOX.a", "$JS.ACK.S.C.1.2.3.4.5.6"] {
            #expect(JetStreamAckMetadata(replySubject: bad) == nil, "\(bad)")
        }
    }

    @Test func pushStatuses() throws {
        #expect(try Self.withMessage(Self.hmsg("NATS/1.0 100 FlowControl Request\r\n\r\n", reply: "$JS.FC.KV_rooms.x.y")) { JetStreamPushStatus($0) }
            == .flowControl(reply: "$JS.FC.KV_rooms.x.y"))
        let heartbeat = try Self.withMessage(Self.hmsg("NATS/1.0 100 Idle Heartbeat\r\nNats-Last-Consumer: 4\r\nNats-Last-Stream: 9\r\n\r\n")) { JetStreamPushStatus($0) }
        #expect(heartbeat == .idleHeartbeat(stalledReply: nil, lastConsumerSequence: 4, lastStreamSequence: 9))
        #expect(heartbeat?.answerSubject == nil)
        let stalled = try Self.withMessage(Self.hmsg("NATS/1.0 100 Idle Heartbeat\r\nNats-Consumer-Stalled: $JS.FC.a.b\r\n\r\n")) { JetStreamPushStatus($0) }
        #expect(stalled?.answerSubject == "$JS.FC.a.b")
        #expect(try Self.withMessage(Self.hmsg("NATS/1.0 408 Request Timeout\r\n\r\n")) { JetStreamPushStatus($0) } == .other(status: 408, description: "Request Timeout"))
        #expect(try Self.withMessage(Self.hmsg("NATS/1.0\r\nA: b\r\n\r\n")) { JetStreamPushStatus($0) } == nil)
        #expect(try Self.withMessage(Self.msg("x")) { JetStreamPushStatus($0) } == nil)
    }

    @Test func kvEntries() throws {
        let bucket = try KVBucketConfiguration(bucket: "rooms")
        let put = try Self.withMessage(Self.msg("v1", subject: "$KV.rooms.6c", reply: "$JS.ACK.KV_rooms.c.1.5.3.1700000000000000000.2")) { KVEntry($0, bucket: bucket) }
        #expect(put == KVEntry(key: "6c", value: Array("v1".utf8), operation: .put, revision: 5, pending: 2, timestamp: 1_700_000_000_000_000_000))
        let delete = try Self.withMessage(Self.hmsg("NATS/1.0\r\nKV-Operation: DEL\r\n\r\n", subject: "$KV.rooms.6d", reply: "$JS.ACK.KV_rooms.c.1.6.4.1700000000000000001.0")) { KVEntry($0, bucket: bucket) }
        #expect(delete == KVEntry(key: "6d", value: [], operation: .delete, revision: 6, pending: 0, timestamp: 1_700_000_000_000_000_001))
        let purge = try Self.withMessage(Self.hmsg("NATS/1.0\r\nKV-Operation: PURGE\r\nNats-Rollup: sub\r\n\r\n", subject: "$KV.rooms.6e")) { KVEntry($0, bucket: bucket) }
        #expect(purge?.operation == .purge)
        #expect(purge?.revision == 0)
        // A direct get reply: subject is the requester's inbox; the key and revision are headers.
        let direct = try Self.withMessage(Self.hmsg("NATS/1.0\r\nNats-Stream: KV_rooms\r\nNats-Subject: $KV.rooms.6c\r\nNats-Sequence: 12\r\nNats-Time-Stamp: 2026-01-01T00:00:00Z\r\n\r\n", "value")) { KVEntry($0, bucket: bucket) }
        #expect(direct == KVEntry(key: "6c", value: Array("value".utf8), operation: .put, revision: 12))
        #expect(try Self.withMessage(Self.msg("x", subject: "$KV.other.6c")) { KVEntry($0, bucket: bucket) } == nil)
        #expect(try Self.withMessage(Self.hmsg("NATS/1.0\r\nKV-Operation: EXPLODE\r\n\r\n", subject: "$KV.rooms.6c")) { KVEntry($0, bucket: bucket) } == nil)
        #expect(try Self.withMessage(Self.hmsg("NATS/1.0 100 Idle Heartbeat\r\n\r\n", subject: "$KV.rooms.6c")) { KVEntry($0, bucket: bucket) } == nil)
        #expect(try Self.withMessage(Self.hmsg("NATS/1.0 404 Message Not Found\r\n\r\n")) { KVEntry($0, bucket: bucket) } == nil)
    }
}
