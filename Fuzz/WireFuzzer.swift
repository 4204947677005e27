// libFuzzer target for the wire layer: the incremental frame decoder and both message decoders.
// Built by `make fuzz` with `swiftc -sanitize=fuzzer,address` over Sources/GhostSync/Wire.
//
// Properties checked on every input:
// - decoding never crashes, whatever the bytes and however they are split across reads;
// - splitting the same stream differently yields the same payloads (or the same error);
// - a payload that decodes re-encodes to exactly the same bytes (ClientWire and ServerWire):
//   the codec is a bijection on valid input, so nothing is lost or invented.

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    guard let first = bytes.first else { return 0 }
    let stream = Array(bytes.dropFirst())
    let whole = decodeAll(stream, chunk: stream.count + 1)
    let split = decodeAll(stream, chunk: Int(first % 17) + 1)
    precondition(whole.payloads == split.payloads && whole.failed == split.failed, "split changed the result")
    for payload in whole.payloads {
        if let message = try? ClientWire(payload: payload) {
            precondition(message.encodedPayload() == payload, "ClientWire round trip differs")
        }
        if let message = try? ServerWire(payload: payload) {
            precondition(message.encodedPayload() == payload, "ServerWire round trip differs")
        }
    }
    return 0
}

private func decodeAll(_ stream: [UInt8], chunk: Int) -> (payloads: [[UInt8]], failed: Bool) {
    var decoder = FrameDecoder(maxPayload: 4096)
    var payloads: [[UInt8]] = []
    var start = 0
    while start < stream.count {
        let end = min(stream.count, start + chunk)
        do {
            _ = try Array(stream[start..<end]).withUnsafeBytes { raw in
                try decoder.feed(raw) { payload in
                    payloads.append(Array(payload))
                    return .proceed
                }
            }
        } catch {
            return (payloads, true)
        }
        start = end
    }
    return (payloads, false)
}
