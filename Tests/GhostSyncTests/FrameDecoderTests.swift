import Testing
@testable import GhostSync

@Suite struct FrameDecoderTests {
    private let frames: [[UInt8]] = [
        ClientWire.joinRoom("lobby").encodedFrame(),
        ClientWire.broadcast(Array(repeating: 7, count: 300)).encodedFrame(),
        ClientWire.ping.encodedFrame(),
        ClientWire.broadcast([]).encodedFrame(),
        ClientWire.echoTest(Array("hello".utf8)).encodedFrame(),
    ]

    private var stream: [UInt8] { frames.flatMap { $0 } }
    private var payloads: [[UInt8]] { frames.map { Array($0.dropFirst(4)) } }

    /// Feeds `chunks` in order and returns the payloads handed out.
    private func decode(_ chunks: [[UInt8]], maxPayload: Int = 1024) throws -> [[UInt8]] {
        var decoder = FrameDecoder(maxPayload: maxPayload)
        var out: [[UInt8]] = []
        for chunk in chunks {
            let action = try chunk.withUnsafeBytes { raw in
                try decoder.feed(raw) { payload in
                    out.append(Array(payload))
                    return .proceed
                }
            }
            #expect(action == .proceed)
        }
        #expect(!decoder.hasPendingBytes)
        return out
    }

    @Test func manyFramesInOneRead() throws {
        #expect(try decode([stream]) == payloads)
    }

    @Test func oneByteAtATime() throws {
        #expect(try decode(stream.map { [$0] }) == payloads)
    }

    @Test func everySplitIntoTwoReads() throws {
        let all = stream
        for cut in 0...all.count {
            #expect(try decode([Array(all[..<cut]), Array(all[cut...])]) == payloads, "cut at \(cut)")
        }
    }

    @Test func randomSplits() throws {
        var generator = SystemRandomNumberGenerator()
        let all = stream
        for _ in 0..<200 {
            var chunks: [[UInt8]] = []
            var start = 0
            while start < all.count {
                let length = Int.random(in: 1...40, using: &generator)
                chunks.append(Array(all[start..<min(all.count, start + length)]))
                start += length
            }
            #expect(try decode(chunks) == payloads)
        }
    }

    @Test func lengthIsCheckedBeforeTheBodyArrives() {
        var decoder = FrameDecoder(maxPayload: 1024)
        // Only the prefix of a 4 GiB frame: rejected at once, nothing stored.
        #expect(throws: WireError.payloadTooLarge(length: Int(UInt32.max), limit: 1024)) {
            try ([0xff, 0xff, 0xff, 0xff] as [UInt8]).withUnsafeBytes { raw in try decoder.feed(raw) { _ in .proceed } }
        }
        // A prefix split over two reads is checked as soon as its fourth byte is in.
        var split = FrameDecoder(maxPayload: 1024)
        _ = try? ([0x00, 0x00] as [UInt8]).withUnsafeBytes { raw in try split.feed(raw) { _ in .proceed } }
        #expect(throws: WireError.payloadTooLarge(length: 1025, limit: 1024)) {
            try ([0x04, 0x01] as [UInt8]).withUnsafeBytes { raw in try split.feed(raw) { _ in .proceed } }
        }
    }

    @Test func exactlyMaxPayloadIsAccepted() throws {
        let frame = ClientWire.broadcast(Array(repeating: 1, count: 1024 - 12)).encodedFrame()
        #expect(frame.count == 4 + 1024)
        #expect(try decode([frame], maxPayload: 1024).count == 1)
    }

    @Test func zeroLengthFrameIsHandedOutEmpty() throws {
        #expect(try decode([[0, 0, 0, 0]]) == [[]])
    }

    @Test func pauseKeepsTheRestInOrder() throws {
        var decoder = FrameDecoder(maxPayload: 1024)
        var seen: [[UInt8]] = []
        let all = stream
        let action = try all.withUnsafeBytes { raw in
            try decoder.feed(raw) { payload in
                seen.append(Array(payload))
                return seen.count == 1 ? .pause : .proceed
            }
        }
        #expect(action == .pause)
        #expect(seen == [payloads[0]])
        #expect(decoder.hasPendingBytes)
        let resumed = try decoder.resume { payload in
            seen.append(Array(payload))
            return .proceed
        }
        #expect(resumed == .proceed)
        #expect(seen == payloads)
        #expect(!decoder.hasPendingBytes)
    }

    @Test func pauseInsideAFrameCompletedFromPendingBytes() throws {
        var decoder = FrameDecoder(maxPayload: 1024)
        var seen: [[UInt8]] = []
        let all = stream
        let first = frames[0].count
        // The first frame arrives in two reads; pause on it; the rest follows in the second read.
        _ = try Array(all[..<(first - 3)]).withUnsafeBytes { raw in try decoder.feed(raw) { _ in .proceed } }
        let action = try Array(all[(first - 3)...]).withUnsafeBytes { raw in
            try decoder.feed(raw) { payload in
                seen.append(Array(payload))
                return .pause
            }
        }
        #expect(action == .pause)
        _ = try decoder.resume { payload in
            seen.append(Array(payload))
            return .proceed
        }
        #expect(seen == payloads)
    }

    @Test func stopDiscardsEverything() throws {
        var decoder = FrameDecoder(maxPayload: 1024)
        let all = stream
        let action = try all.withUnsafeBytes { raw in try decoder.feed(raw) { _ in .stop } }
        #expect(action == .stop)
        #expect(!decoder.hasPendingBytes)
    }
}
