import CNuma
import Glibc
import Testing
@testable import GhostSync

/// The worker threads as the kernel sees them, read back from /proc/self/task/*/status.
private struct ThreadInfo {
    let name: String
    let allowedCPUs: String
}

private func workerThreads() throws -> [String: ThreadInfo] {
    var result: [String: ThreadInfo] = [:]
    guard let directory = opendir("/proc/self/task") else { return [:] }
    defer { closedir(directory) }
    while let entry = readdir(directory) {
        let tid = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        guard tid.first?.isNumber == true, let status = readFile("/proc/self/task/\(tid)/status") else { continue }
        var name = ""
        var cpus = ""
        for line in status.split(separator: "\n") {
            if line.hasPrefix("Name:") { name = line.dropFirst(5).trimmingCharacters(in: " \t") }
            if line.hasPrefix("Cpus_allowed_list:") { cpus = line.dropFirst(18).trimmingCharacters(in: " \t") }
        }
        if name.hasPrefix("ghost-w") { result[name] = ThreadInfo(name: name, allowedCPUs: cpus) }
    }
    return result
}

func readFile(_ path: String) -> String? {
    guard let file = fopen(path, "r") else { return nil }
    defer { fclose(file) }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 4096)
    while true {
        let count = fread(&chunk, 1, chunk.count, file)
        if count <= 0 { break }
        bytes += chunk[0..<count]
    }
    return String(decoding: bytes, as: UTF8.self)
}

private extension Substring {
    func trimmingCharacters(in set: String) -> String {
        String(drop { set.contains($0) }.reversed().drop { set.contains($0) }.reversed())
    }
}

/// "0-1,3" → [0, 1, 3]
func cpuList(_ text: String) -> [Int] {
    text.split(separator: ",").flatMap { part -> [Int] in
        let bounds = part.split(separator: "-").compactMap { Int($0) }
        return bounds.count == 2 ? Array(bounds[0]...bounds[1]) : bounds
    }
}

extension Relay {
    @Suite struct TopologyTests {
        @Test(arguments: workerCounts)
        func workersAreNamedAndPinned(workers: Int) async throws {
            try await withServer(workers: workers) { handle, _ in
                let allowed = MachineTopology.allowedCPUs()
                let threads = try workerThreads()
                #expect(threads.count == workers)
                for worker in handle.topology.workers {
                    #expect(worker.threadName == "ghost-w\(worker.index)")
                    #expect(worker.cpu == allowed[worker.index % allowed.count])
                    let thread = try #require(threads[worker.threadName])
                    #expect(cpuList(thread.allowedCPUs) == [worker.cpu!])
                }
            }
        }

        @Test func explicitCPUList() async throws {
            let allowed = MachineTopology.allowedCPUs()
            let chosen = [allowed.last!]
            try await withServer(workers: 2, configure: { $0.cpus(chosen) }) { handle, _ in
                let threads = try workerThreads()
                #expect(handle.topology.workers.map(\.cpu) == [chosen[0], chosen[0]])
                for thread in threads.values { #expect(cpuList(thread.allowedCPUs) == chosen) }
            }
        }

        @Test func pinningOffLeavesThreadsFree() async throws {
            try await withServer(workers: 2, configure: { $0.pinning(false) }) { handle, _ in
                let allowed = MachineTopology.allowedCPUs()
                #expect(handle.topology.workers.allSatisfy { $0.cpu == nil })
                let threads = try workerThreads()
                #expect(threads.count == 2)
                for thread in threads.values { #expect(cpuList(thread.allowedCPUs) == allowed) }
            }
        }

        @Test func defaultWorkerCountIsTheAffinityMask() async throws {
            let handle = try await ShardedServer.builder().bind("127.0.0.1:0").build().run()
            #expect(handle.topology.workers.count == MachineTopology.allowedCPUs().count)
            await handle.shutdown()
        }

        @Test func numaTopologyMatchesLibnuma() async throws {
            try await withServer(workers: 2) { handle, _ in
                let topology = handle.topology
                #expect(topology.numaAvailable == (numa_available() >= 0))
                if topology.numaAvailable {
                    #expect(topology.numaNodeCount == Int(numa_max_node()) + 1)
                    for worker in topology.workers {
                        #expect(worker.numaNode == Int(numa_node_of_cpu(Int32(worker.cpu!))))
                    }
                } else {
                    #expect(topology.workers.allSatisfy { $0.numaNode == nil })
                }
                // Placement only matters with more than one node.
                #expect(topology.numaPlacementActive == (topology.numaNodeCount > 1))
            }
            try await withServer(workers: 1, configure: { $0.numaAware(false) }) { handle, _ in
                #expect(handle.topology.workers.allSatisfy { $0.numaNode == nil })
                #expect(!handle.topology.numaPlacementActive)
            }
        }

        @Test func cpuOutsideTheMaskIsRefused() async throws {
            await #expect(throws: ServerError.self) {
                _ = try await ShardedServer.builder().bind("127.0.0.1:0").cpus([100_000]).build().run()
            }
        }
    }
}
