import GhostSync
import ServiceLifecycle

/// A `ShardedServer` as a swift-service-lifecycle `Service`: put it in a `ServiceGroup` next to
/// your other services; it starts the server, calls `onStart` with the handle (create rooms
/// there), and on graceful shutdown (SIGTERM/SIGINT through the group) stops accepting, closes
/// every client cleanly and returns.
public struct ShardedServerService: Service, CustomStringConvertible {
    public var description: String { "ShardedServerService(\(server.configuration.bindAddress))" }

    let server: ShardedServer
    let onStart: @Sendable (ServerHandle) async throws -> Void
    let onStop: @Sendable () async -> Void

    public init(
        _ server: ShardedServer,
        onStart: @escaping @Sendable (ServerHandle) async throws -> Void = { _ in },
        onStop: @escaping @Sendable () async -> Void = {}
    ) {
        self.server = server
        self.onStart = onStart
        self.onStop = onStop
    }

    public func run() async throws {
        let handle = try await server.run()
        do {
            try await onStart(handle)
        } catch {
            await onStop()
            await handle.shutdown()
            throw error
        }
        // Suspends until the group asks for a graceful shutdown (or this task is cancelled).
        try? await gracefulShutdown()
        await onStop()
        await handle.shutdown()
    }
}
