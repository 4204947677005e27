/// One simulated client of a load run. Owned by one `BenchThread`.
final class BenchConnection {
    let index: Int
    let room: Int
    let roomName: String
    let fd: Int32
    /// Index in its thread's connection list (the epoll token).
    let position: Int
    var input: [UInt8] = []
    var output: [UInt8] = []
    var wantsWritable = false
    var isReady = false
    var nextSendAt: UInt64 = 0
    var sequence: UInt64 = 0
    /// Highest sequence seen from each sender (for duplicates and reordering).
    var highestSeen: [Int: UInt64] = [:]
    /// WebSocket: the masking key of every frame this client sends (4 wire bytes as a
    /// little-endian word, `RelayWire.appendMaskedFrame`); 0 and unused over TCP. A `let`, so
    /// reading it per message costs no exclusivity check.
    let maskingKey: UInt32
    /// WebSocket: the opening handshake under way (nil once upgraded). Looked at once per read,
    /// and only on a WebSocket run.
    var upgrade: WebSocketUpgrade?
    /// Which of the run's relays it is connected to (`BenchConfiguration.relay(of:)`), and that
    /// relay's address.
    let relay: Int
    let host: String

    init(index: Int, room: Int, roomName: String, fd: Int32, position: Int, maskingKey: UInt32 = 0, relay: Int = 0, host: String = "") {
        self.relay = relay
        self.host = host
        self.maskingKey = maskingKey
        self.position = position
        self.index = index
        self.room = room
        self.roomName = roomName
        self.fd = fd
    }
}
