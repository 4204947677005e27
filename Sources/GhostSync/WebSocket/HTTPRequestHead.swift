/// An HTTP/1.x request line and headers, as far as the WebSocket port needs them (RFC 9112
/// §3, §5). Strict: anything outside the grammar is a malformed request (400).
package struct HTTPRequestHead: Sendable, Equatable {
    package var method: String
    /// The request target without its query string.
    package var path: String
    package var majorVersion: Int
    package var minorVersion: Int
    /// Header fields in order, names lowercased.
    package var fields: [(name: String, value: String)]

    package static func == (lhs: HTTPRequestHead, rhs: HTTPRequestHead) -> Bool {
        lhs.method == rhs.method && lhs.path == rhs.path && lhs.majorVersion == rhs.majorVersion
            && lhs.minorVersion == rhs.minorVersion && lhs.fields.elementsEqual(rhs.fields, by: { $0 == $1 })
    }

    /// The value of `name` (lowercase); repeated fields are joined with ", " (RFC 9110 §5.3).
    package func value(of name: String) -> String? {
        let values = fields.filter { $0.name == name }.map(\.value)
        return values.isEmpty ? nil : values.joined(separator: ", ")
    }

    /// How many times `name` appears.
    package func count(of name: String) -> Int { fields.count { $0.name == name } }

    /// The comma-separated tokens of `name`, trimmed and lowercased (`Connection`, `Upgrade`).
    package func tokens(of name: String) -> [String] {
        guard let value = value(of: name) else { return [] }
        return value.split(separator: ",").map { $0.trimmingSpaces.lowercased() }.filter { !$0.isEmpty }
    }

    /// Where the head ends: the index just past the blank line, or nil while it is incomplete.
    /// `searchFrom` lets a caller resume the scan where the previous read left off.
    package static func endOfHead(in bytes: UnsafeRawBufferPointer, searchFrom start: Int = 0) -> Int? {
        guard bytes.count >= 4 else { return nil }
        var index = max(0, start - 3)
        while index + 4 <= bytes.count {
            if bytes[index] == 13 && bytes[index + 1] == 10 && bytes[index + 2] == 13 && bytes[index + 3] == 10 {
                return index + 4
            }
            index += 1
        }
        return nil
    }

    /// Parses a complete head (through its blank line); nil when it is malformed.
    package init?(_ bytes: UnsafeRawBufferPointer) {
        // Visible ASCII, space, tab, CR and LF only: header values here are tokens, keys and
        // origins, never text that needs more.
        for byte in bytes where !(byte >= 0x20 && byte < 0x7F) && byte != 9 && byte != 13 && byte != 10 {
            return nil
        }
        let text = String(decoding: bytes, as: UTF8.self)
        // CR LF is one Character, so this splits on line ends; a bare CR or LF left inside a
        // line is malformed.
        var lines = text.split(separator: "\r\n" as Character, omittingEmptySubsequences: false).map(String.init)
        guard !lines.contains(where: { $0.contains("\r") || $0.contains("\n") }) else { return nil }
        // A well-formed head ends with two empty strings (the blank line and what follows it).
        guard lines.count >= 3, lines.removeLast().isEmpty, lines.removeLast().isEmpty else { return nil }
        let requestLine = lines.removeFirst().split(separator: " ", omittingEmptySubsequences: false)
        guard requestLine.count == 3, !requestLine[0].isEmpty, requestLine[1].first == "/" || requestLine[1] == "*" else { return nil }
        let version = requestLine[2]
        guard version.hasPrefix("HTTP/"), version.count == 8 else { return nil }
        let digits = Array(version.dropFirst(5))
        guard digits[1] == ".", let major = digits[0].wholeNumberValue, let minor = digits[2].wholeNumberValue else { return nil }
        var fields: [(name: String, value: String)] = []
        for line in lines {
            // A line starting with whitespace continues the previous one (obs-fold): refused.
            guard let colon = line.firstIndex(of: ":"), let first = line.first, first != " " && first != "\t" else { return nil }
            let name = line[..<colon]
            guard !name.isEmpty, name.allSatisfy(Self.isTokenCharacter) else { return nil }
            fields.append((name.lowercased(), String(line[line.index(after: colon)...]).trimmingSpaces))
        }
        self.method = String(requestLine[0])
        let target = requestLine[1]
        self.path = String(target.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)[0])
        self.majorVersion = major
        self.minorVersion = minor
        self.fields = fields
    }

    private static func isTokenCharacter(_ character: Character) -> Bool {
        guard let ascii = character.asciiValue else { return false }
        switch ascii {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            return true
        default:
            return "!#$%&'*+-.^_`|~".utf8.contains(ascii)
        }
    }
}

extension StringProtocol {
    /// Without leading and trailing spaces and tabs (HTTP's optional whitespace).
    var trimmingSpaces: String {
        let isSpace: (Character) -> Bool = { $0 == " " || $0 == "\t" }
        guard let start = firstIndex(where: { !isSpace($0) }), let end = lastIndex(where: { !isSpace($0) }) else { return "" }
        return String(self[start...end])
    }
}
