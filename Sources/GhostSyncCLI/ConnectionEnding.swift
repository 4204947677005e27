import GhostSync

/// How a connection to the relay ended, said in the one line `join` and `send` leave on stderr
/// (`Error: the relay closed the connection (its last error: room not found: lobby)`) before
/// exiting with status 1.
struct ConnectionEnding: Error, CustomStringConvertible {
    enum Cause {
        /// End of stream: the relay closed the connection (shutdown, timeout, kick, crash).
        case closedByRelay
        /// The connection was reset.
        case reset
        /// Anything else the client reported (a protocol error, an I/O error).
        case failed(String)
    }

    let cause: Cause
    /// The text of the last `Error` frame the relay sent, which often says why it closed.
    let lastRelayError: String?

    /// The ending that `error`, thrown by `Client.recv()` or a send, stands for.
    init(_ error: any Error, lastRelayError: String?) {
        switch error {
        case SyncError.connectionReset: cause = .reset
        default: cause = .failed("\(error)")
        }
        self.lastRelayError = lastRelayError
    }

    init(_ cause: Cause, lastRelayError: String?) {
        self.cause = cause
        self.lastRelayError = lastRelayError
    }

    var description: String {
        let what = switch cause {
        case .closedByRelay: "the relay closed the connection"
        case .reset: "the connection to the relay was reset"
        case .failed(let reason): "the connection to the relay failed: \(reason)"
        }
        return lastRelayError.map { "\(what) (its last error: \($0))" } ?? what
    }
}
