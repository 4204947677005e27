import Glibc

/// Waits for SIGINT or SIGTERM without blocking a Swift concurrency thread: the signal handler
/// (async-signal-safe) writes to a pipe; a plain thread blocks reading it and resumes the waiter.
enum TerminationSignal {
    nonisolated(unsafe) private static var pipeWriteEnd: Int32 = -1

    static func wait() async {
        var ends: [Int32] = [0, 0]
        guard pipe(&ends) == 0 else { return }
        pipeWriteEnd = ends[1]
        let handler: @convention(c) (Int32) -> Void = { _ in
            var byte: UInt8 = 1
            _ = Glibc.write(TerminationSignal.pipeWriteEnd, &byte, 1)
        }
        signal(SIGINT, handler)
        signal(SIGTERM, handler)
        let readEnd = ends[0]
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let box = Unmanaged.passRetained(ContinuationBox(continuation, fd: readEnd)).toOpaque()
            var thread = pthread_t()
            pthread_create(&thread, nil, { context in
                let box = Unmanaged<ContinuationBox>.fromOpaque(context!).takeRetainedValue()
                var byte: UInt8 = 0
                while Glibc.read(box.fd, &byte, 1) < 0 && errno == EINTR {}
                box.continuation.resume()
                return nil
            }, box)
            pthread_detach(thread)
        }
    }

    private final class ContinuationBox: Sendable {
        let continuation: CheckedContinuation<Void, Never>
        let fd: Int32
        init(_ continuation: CheckedContinuation<Void, Never>, fd: Int32) {
            self.continuation = continuation
            self.fd = fd
        }
    }
}
