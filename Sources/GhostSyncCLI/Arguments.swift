import ArgumentParser
import Glibc
import Logging

/// A duration flag: `500ms`, `2s`, `1m`, or a plain number of seconds (`1.5`).
struct DurationArgument: ExpressibleByArgument, Sendable {
    let duration: Duration

    init?(argument: String) {
        let text = argument.lowercased()
        let (number, scale): (Substring, Double)
        if text.hasSuffix("ms") {
            (number, scale) = (text.dropLast(2), 0.001)
        } else if text.hasSuffix("s") {
            (number, scale) = (text.dropLast(), 1)
        } else if text.hasSuffix("m") {
            (number, scale) = (text.dropLast(), 60)
        } else {
            (number, scale) = (text[...], 1)
        }
        guard let value = Double(number), value >= 0, value.isFinite else { return nil }
        duration = .milliseconds(Int64((value * scale * 1000).rounded()))
    }

    static var defaultCompletionKind: CompletionKind { .default }

    /// How `--help` shows a default: `31s`, `500ms`, `0s`.
    var defaultValueDescription: String {
        let milliseconds = duration.components.seconds * 1000 + duration.components.attoseconds / 1_000_000_000_000_000
        return milliseconds % 1000 == 0 ? "\(milliseconds / 1000)s" : "\(milliseconds)ms"
    }
}

/// A CPU list flag: `0-3,8`.
struct CPUListArgument: ExpressibleByArgument, Sendable {
    let cpus: [Int]

    init?(argument: String) {
        var cpus: [Int] = []
        for part in argument.split(separator: ",") {
            let bounds = part.split(separator: "-", omittingEmptySubsequences: false)
            if bounds.count == 1, let cpu = Int(bounds[0]), cpu >= 0 {
                cpus.append(cpu)
            } else if bounds.count == 2, let low = Int(bounds[0]), let high = Int(bounds[1]), low >= 0, low <= high {
                cpus += Array(low...high)
            } else {
                return nil
            }
        }
        if cpus.isEmpty { return nil }
        self.cpus = cpus
    }
}

extension Logger.Level: @retroactive ExpressibleByArgument {}

enum LogFormat: String, ExpressibleByArgument, CaseIterable, Sendable {
    case text
    case json
}

/// `--addr` for the commands that join a relay as a client (`join`, `send`).
struct RelayAddressOptions: ParsableArguments {
    static let environmentVariable = "GHOSTSYNC_ADDR"

    @Option(name: .customLong("addr"), help: ArgumentHelp(
        "Relay address (default: $\(environmentVariable), else 127.0.0.1:7777).", valueName: "addr"))
    var explicitAddress: String?

    var address: String { explicitAddress ?? environmentValue(Self.environmentVariable) ?? "127.0.0.1:7777" }
}

/// `--control` for `admin` and each of its subcommands.
struct ControlEndpointOptions: ParsableArguments {
    static let environmentVariable = "GHOSTSYNC_CONTROL"

    @Option(name: .customLong("control"), help: ArgumentHelp(
        "Control endpoint address (default: $\(environmentVariable), else 127.0.0.1:8888).", valueName: "addr"))
    var explicitAddress: String?
}

/// The value of an environment variable, nil when unset or empty.
func environmentValue(_ name: String) -> String? {
    guard let value = getenv(name).map({ String(cString: $0) }), !value.isEmpty else { return nil }
    return value
}
