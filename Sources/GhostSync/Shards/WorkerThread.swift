import CGhostSyncShims
import Glibc

/// Everything a worker thread needs to start, handed from `run()` to the new thread.
final class WorkerLaunch: Sendable {
    let index: Int
    let placement: ServerTopology.Worker
    let core: ServerCore
    let listener: Listener
    let webSocketListener: Listener?
    let epoll: Epoll
    let started: CompletionLatch
    let stopped: CompletionLatch

    init(
        index: Int, placement: ServerTopology.Worker, core: ServerCore, listener: Listener, webSocketListener: Listener?,
        epoll: Epoll, started: CompletionLatch, stopped: CompletionLatch
    ) {
        self.index = index
        self.placement = placement
        self.core = core
        self.listener = listener
        self.webSocketListener = webSocketListener
        self.epoll = epoll
        self.started = started
        self.stopped = stopped
    }
}

/// Starts one worker on its own pthread: named, pinned, NUMA-placed, then running its loop.
enum WorkerThread {
    static func start(_ launch: WorkerLaunch) throws(SystemError) -> pthread_t {
        try NativeThread.start(name: launch.placement.threadName) { main(launch) }
    }

    private static func main(_ launch: WorkerLaunch) {
        if let cpu = launch.placement.cpu {
            let result = gs_pin_current_thread(Int32(cpu))
            if result != 0 {
                launch.listener.close()
                launch.webSocketListener?.close()
                launch.epoll.close()
                launch.started.arrive(SystemError(call: "pthread_setaffinity_np(cpu \(cpu))", errno: result))
                launch.stopped.arrive(nil)
                return
            }
        }
        // Allocate from this CPU's node before the worker makes its buffers (first touch).
        if launch.core.topology.numaPlacementActive, let node = launch.placement.numaNode {
            MachineTopology.preferNode(node)
        }
        let worker: Worker
        do {
            worker = try Worker(launch)
        } catch {
            launch.listener.close()
            launch.webSocketListener?.close()
            launch.epoll.close()
            launch.started.arrive(error)
            launch.stopped.arrive(nil)
            return
        }
        launch.started.arrive(nil)
        gs_set_current_worker_index(Int32(launch.index))
        worker.run()
        gs_set_current_worker_index(-1)
        launch.stopped.arrive(nil)
    }
}
