import Glibc

/// The independent client for interop tests: PyPI's nats-py in a virtual environment under
/// `.build/nats-venv`, made on first use (python3 -m venv, pip install; about 20 s once), and the
/// peer script `Tests/NATSInterop/interop.py`.
enum NATSInterop {
    /// nats-py's version, pinned so the interop test always meets the same client.
    static let natsPyVersion = "2.16.0"

    /// The package's root, from this file's path (Tests/GhostSyncTests/Support/…).
    static let packageRoot: String = {
        var parts = "\(#filePath)".split(separator: "/", omittingEmptySubsequences: false)
        parts.removeLast(4)
        return parts.joined(separator: "/")
    }()

    static var venv: String { packageRoot + "/.build/nats-venv" }
    static var script: String { packageRoot + "/Tests/NATSInterop/interop.py" }

    /// The venv's python with nats-py importable, or why there is none (pip could not install
    /// it: no PyPI, no python3 venv module). Prepared once per test process, under a file lock
    /// so concurrent test runs do not build the venv twice.
    static let python: Result<String, TimedOut> = prepare()

    static var isAvailable: Bool {
        if case .success = python { return true }
        return false
    }

    private static func prepare() -> Result<String, TimedOut> {
        let python = venv + "/bin/python"
        mkdir(packageRoot + "/.build", 0o755)
        let lock = open(packageRoot + "/.build/nats-venv.lock", O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        if lock >= 0 { flock(lock, LOCK_EX) }
        defer { if lock >= 0 { flock(lock, LOCK_UN); close(lock) } }
        if run(python, ["-c", "import nats"]) == 0 { return .success(python) }
        let steps: [(String, [String])] = [
            ("/usr/bin/env", ["python3", "-m", "venv", "--clear", venv]),
            (venv + "/bin/pip", ["install", "--disable-pip-version-check", "--quiet", "nats-py==\(natsPyVersion)"]),
        ]
        for (executable, arguments) in steps {
            var output = ""
            let status = run(executable, arguments, output: &output)
            guard status == 0 else {
                let why = "\(([executable] + arguments).joined(separator: " ")) exited \(status): \(output.suffix(800))"
                print("NATSInterop: nats-py unavailable, the interop test is skipped: \(why)")
                return .failure(TimedOut(what: "nats-py (\(why))"))
            }
        }
        guard run(python, ["-c", "import nats"]) == 0 else { return .failure(TimedOut(what: "nats-py importable after pip install")) }
        return .success(python)
    }

    private static func run(_ executable: String, _ arguments: [String]) -> Int32 {
        var output = ""
        return run(executable, arguments, output: &output)
    }

    private static func run(_ executable: String, _ arguments: [String], output: inout String) -> Int32 {
        guard access(executable, X_OK) == 0, let process = try? Subprocess(executable, arguments, absolute: executable) else { return -1 }
        let status = (try? process.wait(timeout: .seconds(300))) ?? -1
        output = process.remainingOutput() + process.stderrText
        return status
    }

    /// Payload `i`, as interop.py's `payload(i)` builds it: empty, bytes that look like protocol
    /// (CR LF, a fake MSG line), 100 KiB, then varied lengths.
    static func payload(_ i: Int) -> [UInt8] {
        switch i {
        case 0: return []
        case 1: return Array("\r\n".utf8) + [0x00, 0xFF] + Array(" MSG fake 1 2\r\n".utf8)
        case 2: return Array((0..<400).flatMap { _ in (0..<256).map { UInt8($0) } })
        default: return (0..<((i * 37) % 1000)).map { k in UInt8((i * 7 + k * 13) & 0xFF) }
        }
    }
}
