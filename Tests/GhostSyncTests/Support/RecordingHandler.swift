import Synchronization
@testable import GhostSync

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Every hook call, as a value the tests can wait for.
enum HookEvent: Equatable, Sendable {
    case connect(SocketAddress)
    case join(UUID, String)
    case leave(UUID, String)
    case broadcast(UUID, String, [UInt8])
    case backpressure(UUID, String)
    case roomCreate(String)
    case roomDelete(String)
    case disconnect(UUID, DisconnectReason)
    case shutdown
    case workerFailed(Int, String)
    case joined(UUID, String)
    case joinFailed(UUID, String, JoinFailure)
    case clusterLink(worker: Int, isUp: Bool)
}

/// A handler that logs every hook and applies simple, configurable policy.
struct RecordingHandler: ServerHandler {
    let log = EventLog<HookEvent>()
    var acceptConnection: @Sendable (SocketAddress) -> Bool = { _ in true }
    var acceptJoin: @Sendable (UUID, String) -> Bool = { _, _ in true }

    func onConnect(_ address: SocketAddress) -> Bool {
        log.append(.connect(address))
        return acceptConnection(address)
    }

    func onJoin(clientID: UUID, roomID: String, address: SocketAddress) -> Bool {
        let accepted = acceptJoin(clientID, roomID)
        if accepted { log.append(.join(clientID, roomID)) }
        return accepted
    }

    func onLeave(clientID: UUID, roomID: String) { log.append(.leave(clientID, roomID)) }

    func onBroadcast(clientID: UUID, roomID: String, data: UnsafeRawBufferPointer) {
        log.append(.broadcast(clientID, roomID, Array(data)))
    }

    func onBackpressure(clientID: UUID, roomID: String) { log.append(.backpressure(clientID, roomID)) }
    func onRoomCreate(_ roomID: String) { log.append(.roomCreate(roomID)) }
    func onRoomDelete(_ roomID: String) { log.append(.roomDelete(roomID)) }

    func onDisconnect(clientID: UUID, address: SocketAddress, reason: DisconnectReason) {
        log.append(.disconnect(clientID, reason))
    }

    func onShutdown() { log.append(.shutdown) }
    func onJoined(clientID: UUID, roomID: String) { log.append(.joined(clientID, roomID)) }
    func onJoinFailed(clientID: UUID, roomID: String, reason: JoinFailure) { log.append(.joinFailed(clientID, roomID, reason)) }
    func onWorkerFailed(_ worker: Int, reason: String) { log.append(.workerFailed(worker, reason)) }
    func onClusterLinkChanged(worker: Int, isUp: Bool, reason: String?) { log.append(.clusterLink(worker: worker, isUp: isUp)) }
}
