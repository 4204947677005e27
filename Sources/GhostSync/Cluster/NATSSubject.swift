/// Subject rules, and room IDs as subject tokens.
///
/// A room ID is any UTF-8 string, but a NATS subject token may not hold `.`, whitespace or the
/// wildcards `*` and `>`, and a JetStream KV key is narrower still (`[-/_=.a-zA-Z0-9]+`). So a
/// room ID travels as the lowercase hex of its UTF-8 bytes (`lobby` → `6c6f626279`), which
/// `roomID(fromToken:)` reverses:
/// - `[0-9a-f]` lies inside every alphabet involved: subject tokens, KV keys, and stream,
///   consumer and durable names (which JetStream also uses as file names);
/// - each ID has exactly one token and decoding is strict (lowercase, even length, valid
///   UTF-8), so two spellings never name one room;
/// - it stays readable in a `nats-server -DV` trace and on a command line.
///
/// Why not base64: standard base64 uses `+` (not a KV key character) and `/` (a path separator
/// in names that become files); base64url swaps those for `-` and `_`, which are allowed but
/// let a token start with `-` (read as an option by `nats kv get`), and every base64 form
/// carries meaning in letter case, so anything on the way that folds case (a case-insensitive
/// file system under a name, a person retyping a key) silently names another room. Hex costs
/// two bytes per byte; room IDs are short.
///
/// The empty room ID, whose hex would be an empty (invalid) token, is `_`.
package enum NATSSubject {
    /// The longest room ID (in UTF-8 bytes) whose subjects fit nats-server's 4096-byte control
    /// line with room to spare for a prefix, a `.sync` suffix and a reply inbox.
    package static let maxRoomIDBytes = 1536

    /// The token for `roomID`: lowercase hex of its UTF-8 bytes, or `_` for the empty ID.
    package static func token(forRoom roomID: String) -> String {
        guard !roomID.isEmpty else { return "_" }
        let digits: [UInt8] = Array("0123456789abcdef".utf8)
        var hex: [UInt8] = []
        hex.reserveCapacity(roomID.utf8.count * 2)
        for byte in roomID.utf8 {
            hex.append(digits[Int(byte >> 4)])
            hex.append(digits[Int(byte & 0x0F)])
        }
        return String(decoding: hex, as: UTF8.self)
    }

    /// The room ID a token names; nil unless it is `_` or lowercase hex (even length) of valid UTF-8.
    package static func roomID(fromToken token: some StringProtocol) -> String? {
        if token == "_" { return "" }
        let hex = Array(token.utf8)
        guard !hex.isEmpty, hex.count % 2 == 0 else { return nil }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(hex.count / 2)
        var index = 0
        while index < hex.count {
            guard let high = nibble(hex[index]), let low = nibble(hex[index + 1]) else { return nil }
            bytes.append(high << 4 | low)
            index += 2
        }
        return String(validating: bytes, as: UTF8.self)
    }

    private static func nibble(_ byte: UInt8) -> UInt8? {
        switch byte {
        case 0x30...0x39: return byte - 0x30
        case 0x61...0x66: return byte - 0x61 + 10
        default: return nil  // uppercase too: one token per ID
        }
    }

    // MARK: Rules

    /// Why `subject` is not a valid subject, or nil when it is. Subjects are non-empty, hold no
    /// space, tab, CR, LF or other control byte, and no empty token (no leading, trailing or
    /// doubled `.`). With `wildcards` (SUB), `*` may stand as a whole token and `>` as the last
    /// one; without (PUB, reply subjects), neither may stand as a token.
    package static func problem(_ subject: UnsafeRawBufferPointer, wildcards: Bool) -> String? {
        guard !subject.isEmpty else { return "empty" }
        var tokenStart = 0
        for index in 0...subject.count {
            if index < subject.count {
                let byte = subject[index]
                if byte <= 0x20 || byte == 0x7F { return "contains whitespace or a control byte" }
                if byte != UInt8(ascii: ".") { continue }
            }
            let length = index - tokenStart
            if length == 0 { return "empty token" }
            if length == 1 {
                let byte = subject[tokenStart]
                if byte == UInt8(ascii: "*") || byte == UInt8(ascii: ">") {
                    if !wildcards { return "wildcard in a literal subject" }
                    if byte == UInt8(ascii: ">") && index != subject.count { return "'>' before the last token" }
                }
            }
            tokenStart = index + 1
        }
        return nil
    }

    package static func problem(_ subject: String, wildcards: Bool) -> String? {
        var subject = subject
        return subject.withUTF8 { problem(UnsafeRawBufferPointer($0), wildcards: wildcards) }
    }

    package static func isValid(_ subject: String, wildcards: Bool = false) -> Bool {
        problem(subject, wildcards: wildcards) == nil
    }

    /// Why `queue` is not a valid queue group name, or nil: non-empty, no whitespace or control.
    package static func queueGroupProblem(_ queue: String) -> String? {
        guard !queue.isEmpty else { return "empty queue group" }
        return queue.utf8.contains(where: { $0 <= 0x20 || $0 == 0x7F }) ? "queue group contains whitespace or a control byte" : nil
    }

    /// Whether `name` is a plain name usable as one token everywhere (node IDs, bucket names,
    /// prefixes' tokens): `[A-Za-z0-9_-]+`.
    package static func isPlainName(_ name: some StringProtocol) -> Bool {
        !name.isEmpty && name.utf8.allSatisfy { byte in
            (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A)
                || byte == UInt8(ascii: "_") || byte == UInt8(ascii: "-")
        }
    }
}
