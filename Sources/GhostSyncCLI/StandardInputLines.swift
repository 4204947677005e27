import GhostSync
import Glibc

/// Lines of standard input, read with read(2) on descriptor 0 by a thread of its own
/// (`ghost-stdin`). No C stream is involved, so nothing the output side does (`fflush`, `print`)
/// can wait for this reader, and no Swift concurrency thread waits for the user to type.
///
/// A line is the bytes before a `\n`, without a `\r` just before it (as `readLine()`); a last
/// line without `\n` counts. The stream finishes at the end of input or on a read error.
enum StandardInputLines {
    static func start() -> AsyncStream<[UInt8]> {
        let (stream, continuation) = AsyncStream<[UInt8]>.makeStream()
        do {
            try NativeThread.start(name: "ghost-stdin", detached: true) {
                read(from: 0) { continuation.yield($0) }
                continuation.finish()
            }
        } catch {
            continuation.finish()  // no reader thread: behave as an empty input
        }
        return stream
    }

    /// Reads `descriptor` to its end, calling `line` for each line.
    private static func read(from descriptor: Int32, line: ([UInt8]) -> Void) {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 16 * 1024, alignment: 1)
        defer { buffer.deallocate() }
        var partial: [UInt8] = []
        reading: while true {
            switch try? Syscall.read(descriptor, into: buffer) {
            case .transferred(let count)?:
                var start = 0
                for index in 0..<count where buffer[index] == UInt8(ascii: "\n") {
                    partial += buffer[start..<index]
                    line(withoutCarriageReturn(partial))
                    partial.removeAll(keepingCapacity: true)
                    start = index + 1
                }
                partial += buffer[start..<count]
            case .wouldBlock?:
                // Someone made the shared descriptor non-blocking (a terminal shares it with the
                // shell): wait for input instead of taking that for its end.
                var ready = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
                _ = poll(&ready, 1, -1)
            case .endOfFile?, nil:
                break reading
            }
        }
        if !partial.isEmpty { line(withoutCarriageReturn(partial)) }
    }

    private static func withoutCarriageReturn(_ bytes: [UInt8]) -> [UInt8] {
        bytes.last == UInt8(ascii: "\r") ? Array(bytes.dropLast()) : bytes
    }
}
