/// Another relay of the cluster as seen from here (`ServerHandle.clusterNodes`).
public struct ClusterNodeStatus: Sendable, Equatable {
    public let name: String
    /// Its connections, from its last heartbeat.
    public let members: Int
    /// Monotonic milliseconds when a worker here last heard from it.
    public let lastHeard: Int64
}

/// One worker's view of the cluster, published for `ServerHandle` once per heartbeat interval.
struct ClusterView: Sendable {
    var connected: Bool
    var lastError: String?
    var peers: [ClusterNodeStatus]
}
