import CGhostSyncShims
import CNuma

/// Where the server's workers run: their CPUs and NUMA nodes. For logging and capacity planning.
public struct ServerTopology: Sendable, CustomStringConvertible {
    /// One worker thread.
    public struct Worker: Sendable, Equatable {
        /// 0-based index; also the shard number of the rooms it owns.
        public let index: Int
        /// The thread name, as top and perf show it (`ghost-w0`, ...).
        public let threadName: String
        /// The CPU the thread is pinned to, or nil when pinning is off.
        public let cpu: Int?
        /// The NUMA node of that CPU when libnuma reports NUMA, else nil.
        public let numaNode: Int?
    }

    public let workers: [Worker]
    /// Whether libnuma reports NUMA support on this host (`numa_available() >= 0`).
    public let numaAvailable: Bool
    /// Number of NUMA nodes libnuma sees (1 when NUMA is unavailable).
    public let numaNodeCount: Int
    /// Whether NUMA placement is in effect (option on, and more than one node).
    public let numaPlacementActive: Bool

    public var description: String {
        let list = workers.map { worker in
            "\(worker.threadName)@cpu\(worker.cpu.map(String.init) ?? "*")" + (worker.numaNode.map { "/node\($0)" } ?? "")
        }
        return "\(workers.count) workers [\(list.joined(separator: ", "))], NUMA nodes: \(numaNodeCount)"
    }
}

/// What the machine offers, read once when a server starts.
enum MachineTopology {
    /// CPUs in the calling thread's affinity mask, ascending.
    static func allowedCPUs() -> [Int] {
        var cpus = [Int32](repeating: 0, count: 1024)
        let count = Int(gs_current_affinity(&cpus, Int32(cpus.count)))
        guard count > 0 else { return [0] }
        return cpus.prefix(min(count, cpus.count)).map(Int.init)
    }

    static var numaAvailable: Bool { numa_available() >= 0 }

    static var numaNodeCount: Int { numaAvailable ? Int(numa_max_node()) + 1 : 1 }

    static func numaNode(ofCPU cpu: Int) -> Int? {
        guard numaAvailable else { return nil }
        let node = numa_node_of_cpu(Int32(cpu))
        return node >= 0 ? Int(node) : nil
    }

    /// Makes the calling thread allocate from `node` first (a no-op on single-node hosts).
    static func preferNode(_ node: Int) {
        numa_set_preferred(Int32(node))
    }

    static func plan(workers requested: Int?, cpus requestedCPUs: [Int]?, pinning: Bool, numaAware: Bool) throws(ServerError) -> ServerTopology {
        let allowed = allowedCPUs()
        if let requestedCPUs {
            if requestedCPUs.isEmpty { throw .invalidConfiguration("cpus must not be empty") }
            for cpu in requestedCPUs where !allowed.contains(cpu) {
                throw .invalidConfiguration("CPU \(cpu) is not in this process's affinity mask \(allowed)")
            }
        }
        let cpuList = requestedCPUs ?? allowed
        let count = requested ?? cpuList.count
        if count < 1 { throw .invalidConfiguration("workers must be at least 1") }
        let nodes = numaNodeCount
        let placement = numaAware && pinning && numaAvailable && nodes > 1
        let workers = (0..<count).map { index -> ServerTopology.Worker in
            let cpu = pinning ? cpuList[index % cpuList.count] : nil
            return ServerTopology.Worker(
                index: index,
                threadName: "ghost-w\(index)",
                cpu: cpu,
                numaNode: numaAware ? cpu.flatMap(numaNode(ofCPU:)) : nil)
        }
        return ServerTopology(workers: workers, numaAvailable: numaAvailable, numaNodeCount: nodes, numaPlacementActive: placement)
    }
}
