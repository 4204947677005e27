import GhostSync
import Glibc

/// Standard output for `join` and `send`: text is queued, and a thread of its own
/// (`ghost-stdout`) writes it with write(2).
///
/// Why not `print`: C streams share state. glibc's `fflush(nil)` locks every stream, stdin's
/// included, which a thread waiting in `readLine()` holds; the printer then waited for the user
/// to type, stopped receiving, and the relay dropped the client for a ping timeout. And a write
/// to a paused terminal (Ctrl-S) or an undrained pipe blocks for as long as the reader likes.
/// Here nothing is shared with the stdin reader, and no Swift concurrency thread blocks: `write`
/// only queues, and suspends (never blocks) while more than `capacity` bytes wait.
///
/// The thread lives as long as the process.
final class ConsoleOutput: Sendable {
    private struct State {
        var queue: [[UInt8]] = []
        /// Bytes queued plus bytes the thread has taken and not yet written.
        var pendingBytes = 0
        var waitingForRoom: [CheckedContinuation<Void, Never>] = []
        var waitingForDrain: [CheckedContinuation<Void, Never>] = []
    }

    private let descriptor: Int32
    private let capacity: Int
    private let state = Locked(State())
    private let wake: EventSignal

    /// Starts the writer thread for `descriptor` (1 for stdout).
    init(descriptor: Int32, capacity: Int = 1 << 20) throws(SystemError) {
        self.descriptor = descriptor
        self.capacity = capacity
        wake = try EventSignal()
        try NativeThread.start(name: "ghost-stdout", detached: true) { [self] in run() }
    }

    /// Standard output, or a one-line failure when its writer thread cannot start.
    static func standardOutput() throws(CommandFailure) -> ConsoleOutput {
        do {
            return try ConsoleOutput(descriptor: 1)
        } catch {
            throw CommandFailure("cannot start the output thread: \(error)")
        }
    }

    /// Queues `text` for writing. Suspends while the queue is over capacity, that is while the
    /// terminal or pipe is not reading.
    func write(_ text: String) async {
        let bytes = Array(text.utf8)
        guard !bytes.isEmpty else { return }
        let full = state.withLock { state in
            state.queue.append(bytes)
            state.pendingBytes += bytes.count
            return state.pendingBytes > capacity
        }
        wake.signal()
        guard full else { return }
        await withCheckedContinuation { continuation in
            let hasRoom = state.withLock { state in
                if state.pendingBytes <= capacity { return true }
                state.waitingForRoom.append(continuation)
                return false
            }
            if hasRoom { continuation.resume() }
        }
    }

    /// Returns once everything queued so far has been written (call before exiting).
    func drain() async {
        await withCheckedContinuation { continuation in
            let drained = state.withLock { state in
                if state.pendingBytes == 0 { return true }
                state.waitingForDrain.append(continuation)
                return false
            }
            if drained { continuation.resume() }
        }
    }

    private func run() {
        while true {
            let batch = state.withLock { state in
                defer { state.queue.removeAll() }
                return state.queue
            }
            guard !batch.isEmpty else {
                // The eventfd counts signals, so one sent since the queue was looked at is not lost.
                var signal = pollfd(fd: wake.fd, events: Int16(POLLIN), revents: 0)
                _ = poll(&signal, 1, -1)
                wake.drain()
                continue
            }
            var written = 0
            for bytes in batch {
                writeAll(bytes)
                written += bytes.count
            }
            let resumptions = state.withLock { state in
                state.pendingBytes -= written
                var resumptions: [CheckedContinuation<Void, Never>] = []
                if state.pendingBytes <= capacity { swap(&resumptions, &state.waitingForRoom) }
                if state.pendingBytes == 0 {
                    resumptions += state.waitingForDrain
                    state.waitingForDrain.removeAll()
                }
                return resumptions
            }
            resumptions.forEach { $0.resume() }
        }
    }

    /// Writes all of `bytes`. On an error (EIO, EPIPE with SIGPIPE ignored) the rest is dropped:
    /// there is nowhere else to say it.
    private func writeAll(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                switch try? Syscall.write(descriptor, UnsafeRawBufferPointer(rebasing: raw[offset...])) {
                case .transferred(let count)? where count > 0:
                    offset += count
                case .wouldBlock?:
                    // Someone made the shared descriptor non-blocking (a terminal shares it with
                    // the shell): wait until it takes more.
                    var ready = pollfd(fd: descriptor, events: Int16(POLLOUT), revents: 0)
                    _ = poll(&ready, 1, -1)
                default:
                    return
                }
            }
        }
    }
}
