import CGhostSyncShims
import Glibc
@testable import GhostSync

/// A tiny pub/sub server speaking just enough RESP3 (Redis) or NATS for the load generator's
/// `--target redis|nats`: for machines where redis-server or nats-server is not installed.
///
/// Redis: `HELLO`, `SUBSCRIBE room`, `PUBLISH room payload` (inline or RESP arrays); a
/// subscriber that publishes receives its own message, as with Redis. NATS: `INFO` on connect,
/// `CONNECT` (echo off, as the load generator asks), `SUB room sid`, `PING`, `PUB room size`.
///
/// One thread with its own epoll loop. Thread confinement: after `init`, the connection table
/// and buffers are touched only by that thread; `stop()` talks to it through an eventfd.
final class PubSubStandIn: @unchecked Sendable {
    enum Dialect { case redis, nats }

    let port: UInt16
    private let dialect: Dialect
    private let listener: Listener
    private let epoll: Epoll
    private let wake: EventSignal
    private var thread = pthread_t()
    private var peers: [Int32: Peer] = [:]

    private final class Peer {
        let fd: Int32
        var input: [UInt8] = []
        var output: [UInt8] = []
        var rooms: [String: String] = [:]  // room -> NATS subscription ID
        init(fd: Int32) { self.fd = fd }
    }

    private static let listenerToken = UInt64.max
    private static let wakeToken = UInt64.max - 1

    init(_ dialect: Dialect) throws {
        self.dialect = dialect
        listener = try Listener(bindingTo: SocketAddress(parsing: "127.0.0.1:0"))
        port = listener.address.port
        epoll = try Epoll()
        wake = try EventSignal()
        try epoll.add(listener.fd, events: gs_EPOLLIN, token: Self.listenerToken)
        try epoll.add(wake.fd, events: gs_EPOLLIN, token: Self.wakeToken)
        thread = try NativeThread.start(name: "standin") { [self] in run() }
    }

    func stop() {
        wake.signal()
        pthread_join(thread, nil)
        for peer in peers.values { Glibc.close(peer.fd) }
        peers.removeAll()
        listener.close()
        epoll.close()
        wake.close()
    }

    private func run() {
        let events = UnsafeMutablePointer<epoll_event>.allocate(capacity: 64)
        defer { events.deallocate() }
        let scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: 64 * 1024, alignment: 1)
        defer { scratch.deallocate() }
        while true {
            guard let count = try? Syscall.epollWait(epoll.fd, events, capacity: 64, timeoutMilliseconds: -1) else { return }
            for index in 0..<count {
                switch events[index].data.u64 {
                case Self.wakeToken: return
                case Self.listenerToken: accept()
                case let token:
                    guard let peer = peers[Int32(token)] else { continue }
                    if events[index].events & gs_EPOLLOUT != 0 { flush(peer) }
                    if events[index].events & (gs_EPOLLIN | gs_EPOLLHUP | gs_EPOLLERR) != 0 { read(peer, scratch) }
                }
            }
        }
    }

    private func accept() {
        while let (fd, _) = try? Syscall.accept(listener.fd) {
            let peer = Peer(fd: fd)
            peers[fd] = peer
            try? epoll.add(fd, events: gs_EPOLLIN, token: UInt64(fd))
            if dialect == .nats {
                send(Array("INFO {\"server_id\":\"standin\",\"max_payload\":1048576}\r\n".utf8), to: peer)
            }
        }
    }

    private func read(_ peer: Peer, _ scratch: UnsafeMutableRawBufferPointer) {
        switch (try? Syscall.read(peer.fd, into: scratch)) ?? .endOfFile {
        case .wouldBlock: return
        case .endOfFile:
            epoll.remove(peer.fd)
            Glibc.close(peer.fd)
            peers[peer.fd] = nil
        case .transferred(let count):
            peer.input += scratch[0..<count]
            let consumed = dialect == .redis ? handleRedis(peer) : handleNATS(peer)
            peer.input.removeFirst(consumed)
        }
    }

    private func send(_ bytes: [UInt8], to peer: Peer) {
        peer.output += bytes
        flush(peer)
    }

    private func flush(_ peer: Peer) {
        while !peer.output.isEmpty {
            let result = peer.output.withUnsafeBytes { try? Syscall.send(peer.fd, $0) }
            guard case .transferred(let written)? = result else { break }
            peer.output.removeFirst(written)
        }
        try? epoll.modify(peer.fd, events: gs_EPOLLIN | (peer.output.isEmpty ? 0 : gs_EPOLLOUT), token: UInt64(peer.fd))
    }

    // MARK: RESP3

    /// Handles every complete command in `peer.input`; returns the bytes consumed.
    private func handleRedis(_ peer: Peer) -> Int {
        var offset = 0
        while let (arguments, end) = Self.redisCommand(peer.input, from: offset) {
            offset = end
            guard let name = arguments.first.map({ String(decoding: $0, as: UTF8.self).uppercased() }) else { continue }
            switch name {
            case "HELLO":
                send(Array("%1\r\n$5\r\nproto\r\n:3\r\n".utf8), to: peer)
            case "SUBSCRIBE":
                for room in arguments.dropFirst().map({ String(decoding: $0, as: UTF8.self) }) {
                    peer.rooms[room] = ""
                    send(Array(">3\r\n$9\r\nsubscribe\r\n$\(room.utf8.count)\r\n\(room)\r\n:\(peer.rooms.count)\r\n".utf8), to: peer)
                }
            case "PUBLISH" where arguments.count == 3:
                let room = String(decoding: arguments[1], as: UTF8.self)
                let message = Array(">3\r\n$7\r\nmessage\r\n$\(room.utf8.count)\r\n\(room)\r\n$\(arguments[2].count)\r\n".utf8) + arguments[2] + [13, 10]
                let subscribers = peers.values.filter { $0.rooms[room] != nil }
                for subscriber in subscribers { send(message, to: subscriber) }
                send(Array(":\(subscribers.count)\r\n".utf8), to: peer)
            default:
                send(Array("-ERR unknown command '\(name)'\r\n".utf8), to: peer)
            }
        }
        return offset
    }

    /// One command at `offset`: a RESP array of bulk strings, or an inline line of words.
    private static func redisCommand(_ bytes: [UInt8], from offset: Int) -> ([[UInt8]], Int)? {
        guard offset < bytes.count, let lineEnd = lineEnd(bytes, from: offset) else { return nil }
        guard bytes[offset] == UInt8(ascii: "*") else {
            let words = bytes[offset..<lineEnd].split(separator: UInt8(ascii: " ")).map(Array.init)
            return (words, lineEnd + 2)
        }
        guard let count = Int(String(decoding: bytes[(offset + 1)..<lineEnd], as: UTF8.self)) else { return nil }
        var position = lineEnd + 2
        var arguments: [[UInt8]] = []
        for _ in 0..<count {
            guard position < bytes.count, bytes[position] == UInt8(ascii: "$"),
                  let headerEnd = Self.lineEnd(bytes, from: position),
                  let length = Int(String(decoding: bytes[(position + 1)..<headerEnd], as: UTF8.self)),
                  bytes.count >= headerEnd + 2 + length + 2 else { return nil }
            arguments.append(Array(bytes[(headerEnd + 2)..<(headerEnd + 2 + length)]))
            position = headerEnd + 2 + length + 2
        }
        return (arguments, position)
    }

    // MARK: NATS

    private func handleNATS(_ peer: Peer) -> Int {
        var offset = 0
        while let lineEnd = Self.lineEnd(peer.input, from: offset) {
            let words = peer.input[offset..<lineEnd].split(separator: UInt8(ascii: " ")).map { String(decoding: $0, as: UTF8.self) }
            switch words.first?.uppercased() {
            case "PUB" where words.count == 3:
                guard let size = Int(words[2]), peer.input.count >= lineEnd + 2 + size + 2 else { return offset }
                let payload = Array(peer.input[(lineEnd + 2)..<(lineEnd + 2 + size)])
                for subscriber in peers.values where subscriber !== peer {  // echo off
                    if let sid = subscriber.rooms[words[1]] {
                        send(Array("MSG \(words[1]) \(sid) \(size)\r\n".utf8) + payload + [13, 10], to: subscriber)
                    }
                }
                offset = lineEnd + 2 + size + 2
                continue
            case "SUB" where words.count == 3:
                peer.rooms[words[1]] = words[2]
            case "PING":
                send(Array("PONG\r\n".utf8), to: peer)
            default:
                break  // CONNECT, PONG
            }
            offset = lineEnd + 2
        }
        return offset
    }

    private static func lineEnd(_ bytes: [UInt8], from start: Int) -> Int? {
        var index = start
        while index + 1 < bytes.count {
            if bytes[index] == 13 && bytes[index + 1] == 10 { return index }
            index += 1
        }
        return nil
    }
}
