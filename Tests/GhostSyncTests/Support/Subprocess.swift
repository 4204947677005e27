import Glibc

/// A child process with its stdout and stderr on pipes, for tests of the `ghost-sync`
/// executable. Its stdin is /dev/null, or a pipe the test writes to and keeps open until
/// `closeStandardInput()`. Every wait is bounded.
final class Subprocess {
    let pid: pid_t
    private let stdoutFD: Int32
    private let stderrFD: Int32
    private var stdinFD: Int32?
    private var stdoutBuffer: [UInt8] = []
    private(set) var stderrText = ""
    private var exitStatus: Int32?

    /// The directory of the test bundle, which is where SwiftPM puts the package's executables.
    /// posix_spawn attributes under which the child starts with no signal blocked and default
    /// dispositions: the thread that spawns it (a test-runner thread) blocks nearly every
    /// signal, and a child inheriting that mask never sees SIGTERM (redis-server kept running
    /// and `wait` timed out). The caller destroys them.
    static func cleanSignalAttributes() -> posix_spawnattr_t {
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        var noSignals = sigset_t()
        sigemptyset(&noSignals)
        posix_spawnattr_setsigmask(&attributes, &noSignals)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signal in [SIGTERM, SIGINT, SIGPIPE, SIGHUP] { sigaddset(&defaults, signal) }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        return attributes
    }

    static var productsDirectory: String {
        let path = CommandLine.arguments[0]
        return String(path[..<(path.lastIndex(of: "/") ?? path.endIndex)])
    }

    /// Runs `executable` from the products directory, or the program at `absolute` if given;
    /// with `environment` added to this process's; with stdin on a pipe if `pipingStandardInput`.
    init(_ executable: String, _ arguments: [String], absolute: String? = nil, environment: [String: String] = [:], pipingStandardInput: Bool = false) throws {
        let path = absolute ?? Self.productsDirectory + "/" + executable
        var outPipe: [Int32] = [0, 0]
        var errPipe: [Int32] = [0, 0]
        var inPipe: [Int32] = [-1, -1]
        guard pipe(&outPipe) == 0, pipe(&errPipe) == 0, !pipingStandardInput || pipe(&inPipe) == 0 else { throw TimedOut(what: "pipes") }
        // Close-on-exec, so no child (this one or a later one) inherits the writing end and
        // holds the input open after `closeStandardInput()`.
        if pipingStandardInput { _ = fcntl(inPipe[1], F_SETFD, FD_CLOEXEC) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        if pipingStandardInput {
            posix_spawn_file_actions_adddup2(&actions, inPipe[0], 0)
        } else {
            posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        }
        posix_spawn_file_actions_adddup2(&actions, outPipe[1], 1)
        posix_spawn_file_actions_adddup2(&actions, errPipe[1], 2)
        posix_spawn_file_actions_addclose(&actions, outPipe[0])
        posix_spawn_file_actions_addclose(&actions, errPipe[0])
        let argv = ([absolute == nil ? path : executable] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var attributes = Subprocess.cleanSignalAttributes()
        defer { posix_spawnattr_destroy(&attributes) }
        var environmentLines: [String] = []
        var entry = environ
        while let line = entry.pointee {
            let text = String(cString: line)
            if !environment.keys.contains(String(text.prefix { $0 != "=" })) { environmentLines.append(text) }
            entry += 1
        }
        environmentLines += environment.map { "\($0.key)=\($0.value)" }
        let envp = environmentLines.map { strdup($0) } + [nil]
        defer { envp.forEach { free($0) } }
        var child = pid_t()
        let result = posix_spawn(&child, path, &actions, &attributes, argv, envp)
        close(outPipe[1])
        close(errPipe[1])
        if pipingStandardInput { close(inPipe[0]) }
        guard result == 0 else {
            close(outPipe[0])
            close(errPipe[0])
            if pipingStandardInput { close(inPipe[1]) }
            throw TimedOut(what: "spawn \(path): errno \(result)")
        }
        pid = child
        stdoutFD = outPipe[0]
        stderrFD = errPipe[0]
        stdinFD = pipingStandardInput ? inPipe[1] : nil
    }

    deinit {
        if exitStatus == nil {
            kill(pid, SIGKILL)
            var status: Int32 = 0
            waitpid(pid, &status, 0)
        }
        close(stdoutFD)
        close(stderrFD)
        closeStandardInput()
    }

    /// Writes `text` to the child's stdin pipe (a few lines fit the pipe: this never waits).
    func writeStandardInput(_ text: String) throws {
        guard let stdinFD else { throw TimedOut(what: "a stdin pipe (spawn with pipingStandardInput)") }
        // A child that is gone makes write(2) raise SIGPIPE, which would end the test runner:
        // block it on this thread, and take the pending signal before unblocking (EPIPE remains).
        var pipeSignal = sigset_t()
        sigemptyset(&pipeSignal)
        sigaddset(&pipeSignal, SIGPIPE)
        var previousMask = sigset_t()
        pthread_sigmask(SIG_BLOCK, &pipeSignal, &previousMask)
        defer {
            var now = timespec(tv_sec: 0, tv_nsec: 0)
            while sigtimedwait(&pipeSignal, nil, &now) == SIGPIPE {}
            pthread_sigmask(SIG_SETMASK, &previousMask, nil)
        }
        let bytes = Array(text.utf8)
        var written = 0
        while written < bytes.count {
            let count = bytes.withUnsafeBytes { write(stdinFD, $0.baseAddress! + written, bytes.count - written) }
            if count < 0 {
                if errno == EINTR { continue }
                throw TimedOut(what: "writing to stdin: errno \(errno)")
            }
            written += count
        }
    }

    /// Closes the stdin pipe: the child reads the end of its input.
    func closeStandardInput() {
        if let stdinFD { close(stdinFD) }
        stdinFD = nil
    }

    /// The next line on stdout, waiting at most `timeout`.
    func readLine(timeout: Duration = .seconds(20)) throws -> String {
        let deadline = ContinuousClock.now + timeout
        while true {
            if let newline = stdoutBuffer.firstIndex(of: 10) {
                let line = String(decoding: stdoutBuffer[..<newline], as: UTF8.self)
                stdoutBuffer.removeFirst(newline + 1)
                return line
            }
            guard pump(until: deadline) else { throw TimedOut(what: "a line on stdout (stderr: \(stderrText.suffix(500)))") }
        }
    }

    /// Everything left on stdout once the process has exited.
    func remainingOutput() -> String {
        while pump(until: ContinuousClock.now + .milliseconds(10)) {}
        defer { stdoutBuffer.removeAll() }
        return String(decoding: stdoutBuffer, as: UTF8.self)
    }

    func signal(_ signal: Int32) {
        kill(pid, signal)
    }

    /// Waits for the exit status (the exit code, or 128 + signal), at most `timeout`.
    func wait(timeout: Duration = .seconds(20)) throws -> Int32 {
        if let exitStatus { return exitStatus }
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            var status: Int32 = 0
            if waitpid(pid, &status, WNOHANG) == pid {
                let code = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
                exitStatus = code
                while pump(until: ContinuousClock.now + .milliseconds(10)) {}
                return code
            }
            _ = pump(until: ContinuousClock.now + .milliseconds(20))
        }
        throw TimedOut(what: "process \(pid) to exit")
    }

    /// Reads whatever arrives on stdout or stderr before `deadline`; false if nothing did.
    private func pump(until deadline: ContinuousClock.Instant) -> Bool {
        let remaining = deadline - ContinuousClock.now
        let millis = max(0, Int32(remaining.components.seconds * 1000 + remaining.components.attoseconds / 1_000_000_000_000_000))
        var descriptors = [pollfd(fd: stdoutFD, events: Int16(POLLIN), revents: 0), pollfd(fd: stderrFD, events: Int16(POLLIN), revents: 0)]
        guard poll(&descriptors, 2, millis) > 0 else { return false }
        var progressed = false
        var chunk = [UInt8](repeating: 0, count: 16 * 1024)
        for (index, descriptor) in descriptors.enumerated() where descriptor.revents != 0 {
            let count = chunk.withUnsafeMutableBytes { read(descriptor.fd, $0.baseAddress, $0.count) }
            if count > 0 {
                progressed = true
                if index == 0 { stdoutBuffer += chunk[0..<count] } else { stderrText += String(decoding: chunk[0..<count], as: UTF8.self) }
            }
        }
        return progressed
    }
}
