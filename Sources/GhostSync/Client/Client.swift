#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// A ghost-sync client: connect, join a room, broadcast, and receive room events.
///
/// ```swift
/// let client = try await Client.connect(to: "127.0.0.1:7777")
/// try await client.join("lobby")
/// for try await event in client.events {
///     if case .broadcast(let sender, let data) = event { print(sender, data) }
/// }
/// ```
///
/// `Sendable`: share it between tasks. Sends from several tasks are serialised frame by frame.
/// All I/O runs on one shared reactor thread; no call blocks a Swift concurrency thread.
/// Keep receiving (`recv()` or `events`): that is where server pings are answered.
public final class Client: Sendable {
    let connection: ClientConnection
    /// Events `join` read while waiting for its answer, for `recv()` to return first.
    private let early = Locked<[ServerEvent]>([])

    init(connection: ClientConnection) {
        self.connection = connection
    }

    deinit {
        connection.close()
    }

    /// Connects with the default options (`maxPayload` 256 KiB). `address` is `HOST:PORT`,
    /// with a host name, an IPv4 address or a bracketed IPv6 literal (`[::1]:7777`).
    public static func connect(to address: String) async throws(SyncError) -> Client {
        try await builder().connect(to: address)
    }

    public static func builder() -> ClientBuilder {
        ClientBuilder()
    }

    /// This connection's ID, known once the server has confirmed a join.
    public var clientID: UUID? { connection.clientID }

    /// The server's address.
    public var remoteAddress: SocketAddress { connection.remote }

    /// Joins (or switches to) a room and waits for the relay's answer: returns this
    /// connection's client ID once it confirms, throws `SyncError.joinRefused(text)` when it
    /// answers with an error (`room not found: R`, `room full: R`, `join rejected`), and
    /// `SyncError.timedOut` when no answer comes within `timeout`.
    ///
    /// Events that arrive before the answer (from the room being left, say) are kept for
    /// `recv()`, in order. It reads the connection itself: do not call it while another task
    /// waits in `recv()` or `events`; send with `requestJoin(_:)` there and watch for `.joined`.
    @discardableResult
    public func join(_ roomID: String, timeout: Duration = .seconds(10)) async throws -> UUID {
        try send(.joinRoom(roomID))
        return try await withThrowingTaskGroup(of: UUID.self) { group in
            group.addTask {
                while true {
                    guard let message = try await self.connection.receive() else { throw SyncError.connectionReset }
                    if message == .ping {
                        try? self.send(.pong)
                        continue
                    }
                    guard let event = ServerEvent(message) else { continue }
                    switch event {
                    case .joined(let clientID, roomID): return clientID
                    case .error(let text): throw SyncError.joinRefused(text)
                    default: self.early.withLock { $0.append(event) }
                    }
                }
            }
            group.addTask {
                try await Task.sleep(for: timeout)
                throw SyncError.timedOut("the answer to joining \(roomID)")
            }
            defer { group.cancelAll() }
            return try await group.next()!
        }
    }

    /// Asks to join (or switch to) a room without waiting. The answer comes through `recv()`:
    /// `.joined` or `.error`.
    public func requestJoin(_ roomID: String) async throws(SyncError) {
        try send(.joinRoom(roomID))
    }

    /// Leaves the current room.
    public func leave() async throws(SyncError) {
        try send(.leaveRoom)
    }

    /// Asks the server for a pong (which `recv()` swallows).
    public func ping() async throws(SyncError) {
        try send(.ping)
    }

    /// Relays `data` to every other member of the room. The bytes are written from the
    /// caller's buffer when it is contiguous (no copy unless the socket is full). Returns once
    /// the frame is handed to the kernel or queued; throws if the connection is gone.
    public func broadcast(_ data: some Collection<UInt8>) async throws(SyncError) {
        try sendWithBody(tag: 4, data)
    }

    /// Asks the server to send `data` back (as `.echoTest`).
    public func echoTest(_ data: some Collection<UInt8>) async throws(SyncError) {
        try sendWithBody(tag: 5, data)
    }

    /// The next event; nil when the server closed the connection cleanly (or after `close()`).
    /// Answers server pings and swallows pongs on the way. Throws `SyncError` when the
    /// connection failed, and `CancellationError` if the task is cancelled while waiting (no
    /// frame is lost: the next call returns it).
    public func recv() async throws -> ServerEvent? {
        if let kept = early.withLock({ $0.isEmpty ? nil : $0.removeFirst() }) { return kept }
        while true {
            guard let message = try await connection.receive() else { return nil }
            if message == .ping {
                try? send(.pong)
                continue
            }
            if let event = ServerEvent(message) { return event }
        }
    }

    /// Every event until the connection closes, as an `AsyncSequence`.
    public var events: ClientEvents { ClientEvents(client: self) }

    /// Closes the connection. Pending and later `recv()` calls return nil.
    public func close() {
        connection.close()
    }

    private func send(_ message: ClientWire) throws(SyncError) {
        let frame = message.encodedFrame()
        let result = frame.withUnsafeBytes { raw in
            Result { () throws(SyncError) in
                try connection.send(head: raw, body: UnsafeRawBufferPointer(start: nil, count: 0))
            }
        }
        try result.get()
    }

    /// Header (prefix, tag, data length) in a small stack buffer, data straight from the caller.
    private func sendWithBody(tag: UInt32, _ data: some Collection<UInt8>) throws(SyncError) {
        let count = data.count
        let payload = WireSize.tag + WireSize.bytes(count)
        guard payload <= WireSize.largestPayload else { throw .messageTooLarge(length: payload, limit: WireSize.largestPayload) }
        var head: (UInt64, UInt64) = (0, 0)
        let result: Result<Void, SyncError>? = withUnsafeMutableBytes(of: &head) { raw in
            var writer = WireWriter(raw)
            writer.writeFrameLength(payload)
            writer.writeUInt32(tag)
            writer.writeUInt64(UInt64(count))
            let header = UnsafeRawBufferPointer(rebasing: raw[0..<writer.position])
            return data.withContiguousStorageIfAvailable { body in
                Result { () throws(SyncError) in try connection.send(head: header, body: UnsafeRawBufferPointer(body)) }
            }
        }
        if let result { return try result.get() }
        // Not contiguous: copy once into an array and send that.
        let copy = Array(data)
        let headCopy = head
        let copied = copy.withUnsafeBytes { body in
            withUnsafeBytes(of: headCopy) { raw in
                Result { () throws(SyncError) in try connection.send(head: raw, body: body) }
            }
        }
        try copied.get()
    }
}

/// Options for a `Client`.
public struct ClientBuilder: Sendable {
    /// The relay's `maxPayload` (default 256 KiB, as the original client's receive limit).
    /// The client accepts server frames of up to this plus 16 bytes, because a relayed
    /// Broadcast carries the sender's 16-byte ID on top of what the sender sent: give the
    /// client the same value as the server and every frame the server can send gets through.
    public private(set) var maxPayload = 256 * 1024

    public init() {}

    public func maxPayload(_ bytes: Int) -> Self {
        var copy = self
        copy.maxPayload = bytes
        return copy
    }

    public func connect(to address: String) async throws(SyncError) -> Client {
        let remote: SocketAddress
        do {
            remote = try SocketAddress(parsing: address)
        } catch {
            throw .invalidAddress(error.description)
        }
        return Client(connection: try await ClientConnection.connect(to: remote, maxPayload: maxPayload))
    }
}

/// The events of a `Client`, for `for try await event in client.events`.
public struct ClientEvents: AsyncSequence, Sendable {
    public typealias Element = ServerEvent
    let client: Client

    public struct AsyncIterator: AsyncIteratorProtocol {
        let client: Client

        public mutating func next() async throws -> ServerEvent? {
            try await client.recv()
        }
    }

    public func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(client: client)
    }
}
