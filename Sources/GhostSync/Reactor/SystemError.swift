import Glibc

/// A failed system call: which call and the errno it returned.
public struct SystemError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The name of the failing call, e.g. `bind`.
    public let call: String
    /// The errno value.
    public let errno: Int32

    public init(call: String, errno: Int32) {
        self.call = call
        self.errno = errno
    }

    public var description: String {
        "\(call) failed: \(String(cString: strerror(errno))) (errno \(errno))"
    }
}
