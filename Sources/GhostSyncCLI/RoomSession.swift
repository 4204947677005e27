import GhostSync

/// A client that joined one room, for `join` and `send`: prints the relay's events on stdout,
/// remembers its last Error text, and says how the connection ended.
struct RoomSession: Sendable {
    let client: Client
    let printer: EventPrinter
    let output: ConsoleOutput

    /// Connects, joins `room` and prints the answer. Fails with a one-line message when the relay
    /// cannot be reached, refuses the join, or closes the connection first.
    static func join(_ room: String, at address: String, printer: EventPrinter, output: ConsoleOutput) async throws -> RoomSession {
        let client: Client
        do {
            client = try await Client.connect(to: address)
        } catch {
            throw CommandFailure("\(error)")
        }
        let session = RoomSession(client: client, printer: printer, output: output)
        do {
            try await client.requestJoin(room)
        } catch {
            throw ConnectionEnding(error, lastRelayError: nil)
        }
        var refusal: String?
        if let ending = await session.receive(printing: true, until: { reply in
            if case .error(let message) = reply { refusal = message }
            return true
        }) {
            throw ending
        }
        if let refusal { throw CommandFailure("cannot join \(room): \(refusal)") }
        return session
    }

    /// Receives events, printing them when `printing`, until `isLast` returns true for one
    /// (then nil) or the connection ends (then how it ended). Receiving is also what answers the
    /// relay's pings, so keep calling it while connected.
    func receive(printing: Bool, until isLast: (ServerEvent) -> Bool = { _ in false }) async -> ConnectionEnding? {
        var lastRelayError: String?
        while true {
            let event: ServerEvent
            do {
                guard let next = try await client.recv() else {
                    return ConnectionEnding(.closedByRelay, lastRelayError: lastRelayError)
                }
                event = next
            } catch {
                return ConnectionEnding(error, lastRelayError: lastRelayError)
            }
            if case .error(let message) = event { lastRelayError = message }
            if printing { await output.write(printer.line(for: event) + "\n") }
            if isLast(event) { return nil }
        }
    }
}
