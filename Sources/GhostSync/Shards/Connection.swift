#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// One client connection and everything the relay keeps for it.
///
/// Thread confinement: owned by exactly one worker at a time (the one whose epoll holds `fd`),
/// and moved whole between workers by a `Handoff`. Only the owner reads or writes it.
/// Its cross-thread face is `record`.
///
/// The fields touched per relayed frame are `@exclusivity(unchecked)`: dynamic exclusivity
/// checks on them cost more than the relay work itself, and the accesses are short,
/// single-threaded and never overlap (no method holds one across a call that could take another).
final class Connection {
    let fd: Int32
    let record: ClientRecord
    var decoder: FrameDecoder
    @exclusivity(unchecked) var outbox = Outbox()

    /// The room this client is in; it belongs to the same worker as this connection.
    /// Kept as a manually retained reference so that the relay path can borrow it without an
    /// atomic increment and decrement per broadcast. Invariant: `roomReference` owns exactly one
    /// retain of its room, taken and given back only by `room`'s setter and by `deinit`.
    @exclusivity(unchecked) private(set) var roomReference: Unmanaged<LocalRoom>?

    var room: LocalRoom? {
        get { roomReference?.takeUnretainedValue() }
        set {
            let previous = roomReference
            roomReference = newValue.map { Unmanaged.passRetained($0) }
            previous?.release()
        }
    }
    // The small fields are declared together so they share one word (an idle connection's
    // size is a target: docs/performance.md, S4).
    /// Position in `room.members` (for O(1) removal).
    @exclusivity(unchecked) var memberIndex: Int32 = -1
    /// Index in the owning worker's connection table (also the epoll token).
    @exclusivity(unchecked) var slot: Int32 = -1
    /// Whether EPOLLOUT is registered (only while the socket buffer is full).
    @exclusivity(unchecked) var wantsWritable = false
    /// Whether the connection is on the worker's flush list this iteration.
    @exclusivity(unchecked) var flushQueued = false
    @exclusivity(unchecked) var isClosed = false
    /// A Ping was sent and its Pong has not come back.
    @exclusivity(unchecked) var pingOutstanding = false
    /// A WebSocket client (`webSocket` is set): the fan-out reads this, beside the other
    /// per-recipient fields, to pick the frame in its wire format.
    @exclusivity(unchecked) private(set) var isWebSocket = false

    /// Monotonic milliseconds of the last complete frame received.
    @exclusivity(unchecked) var lastFrameAt: Int64
    /// When the next Ping is due.
    var nextPingAt: Int64
    /// Rate limiting (`maxFramesPerSecond`): the current one-second window and its frame count.
    var rateWindowStart: Int64 = 0
    var framesInRateWindow = 0
    /// Identifies the connection's live timer-wheel entry; bumping it cancels that entry.
    var timerToken: UInt64 = 0
    /// A WebSocket connection's handshake and framing state; nil for TCP. Declared among the
    /// cold fields so that the ones the fan-out touches per recipient (outbox, flush flag) stay
    /// on the cache lines they had before the WebSocket transport.
    @exclusivity(unchecked) var webSocket: WebSocketSession? {
        didSet { isWebSocket = webSocket != nil }
    }

    #if DEBUG
    /// The worker that holds the connection (debug builds: thread-confinement checks). Set by
    /// `register`, cleared by `handOff` before the connection is posted.
    var owner: ObjectIdentifier?
    #endif

    /// What most connections never need, allocated on first use and dropped when unused again,
    /// so an idle connection does not carry it (docs/performance.md, S4).
    final class Extras {
        var pendingJoin: String?
        var handoffBytes: [UInt8] = []
        var nextActionSequence: UInt64 = 0
        var earlyActions: [ClientCommand] = []

        var isUnused: Bool { pendingJoin == nil && handoffBytes.isEmpty && nextActionSequence == 0 && earlyActions.isEmpty }
    }

    private var extras: Extras?

    private var ensuredExtras: Extras {
        if let extras { return extras }
        let created = Extras()
        extras = created
        return created
    }

    private func dropExtrasIfUnused() {
        if extras?.isUnused == true { extras = nil }
    }

    /// Handoff state: a join approved on the previous worker, completed by the new one.
    var pendingJoin: String? {
        get { extras?.pendingJoin }
        set {
            if newValue != nil || extras != nil { ensuredExtras.pendingJoin = newValue }
            dropExtrasIfUnused()
        }
    }

    /// Handoff state: unsent outgoing bytes, copied privately for the new worker.
    var handoffBytes: [UInt8] {
        get { extras?.handoffBytes ?? [] }
        set {
            if !newValue.isEmpty || extras != nil { ensuredExtras.handoffBytes = newValue }
            dropExtrasIfUnused()
        }
    }

    /// Server-side actions: the sequence number of the next one to run, and those that arrived
    /// ahead of it (a later one can overtake an earlier one that was forwarded). They travel
    /// with the connection when it moves.
    var nextActionSequence: UInt64 {
        get { extras?.nextActionSequence ?? 0 }
        set { ensuredExtras.nextActionSequence = newValue }
    }

    var earlyActions: [ClientCommand] {
        get { extras?.earlyActions ?? [] }
        set { ensuredExtras.earlyActions = newValue }
    }

    init(fd: Int32, id: UUID, address: SocketAddress, maxPayload: Int, now: Int64, pingInterval: Int64) {
        self.fd = fd
        self.record = ClientRecord(id: id, address: address)
        self.decoder = FrameDecoder(maxPayload: maxPayload)
        self.lastFrameAt = now
        self.nextPingAt = now + pingInterval
        record.connection = self
    }

    deinit {
        roomReference?.release()
    }

    var id: UUID { record.id }
    var transport: ClientTransport { webSocket == nil ? .tcp : .webSocket }
    var address: SocketAddress { record.address }

    /// Closes the socket of a connection stranded in a mailbox after its worker stopped; true
    /// the first time (the caller then releases what the connection held).
    func closeStranded() -> Bool {
        guard !isClosed else { return false }
        isClosed = true
        Syscall.close(fd)
        return true
    }
}
