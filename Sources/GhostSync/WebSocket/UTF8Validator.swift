/// Checks UTF-8 incrementally, across the fragments of a message, so a text message can be
/// refused at the first invalid byte rather than after it is whole (RFC 6455 §8.1).
///
/// Follows the Unicode well-formed byte sequences table (Unicode 15, table 3-7): no overlong
/// forms, no surrogates (ED A0..BF), nothing above U+10FFFF (F4 90.., F5..FF).
package struct UTF8Validator: Sendable {
    /// Continuation bytes still expected for the current scalar.
    private var remaining: UInt8 = 0
    /// The allowed range of the next continuation byte (narrower than 80...BF only right after
    /// E0, ED, F0 and F4).
    private var lower: UInt8 = 0x80
    private var upper: UInt8 = 0xBF

    package init() {}

    /// False once `bytes` makes the text invalid; the validator then stays unusable.
    package mutating func consume(_ bytes: UnsafeRawBufferPointer) -> Bool {
        for byte in bytes {
            if remaining > 0 {
                guard byte >= lower && byte <= upper else { return false }
                remaining -= 1
                lower = 0x80
                upper = 0xBF
                continue
            }
            switch byte {
            case 0x00...0x7F: continue
            case 0xC2...0xDF: remaining = 1
            case 0xE0: remaining = 2; lower = 0xA0
            case 0xE1...0xEC, 0xEE...0xEF: remaining = 2
            case 0xED: remaining = 2; upper = 0x9F
            case 0xF0: remaining = 3; lower = 0x90
            case 0xF1...0xF3: remaining = 3
            case 0xF4: remaining = 3; upper = 0x8F
            default: return false
            }
        }
        return true
    }

    /// Whether the text consumed so far ends on a scalar boundary.
    package var isComplete: Bool { remaining == 0 }

    package static func isValid(_ bytes: UnsafeRawBufferPointer) -> Bool {
        var validator = UTF8Validator()
        return validator.consume(bytes) && validator.isComplete
    }
}
