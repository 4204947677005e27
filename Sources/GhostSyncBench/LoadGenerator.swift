import GhostSync
import Glibc
import Histogram

/// Drives one scenario against a relay: connects and joins every client, runs warm-up, the
/// measured window and a drain, and reports deliveries, losses, latency and CPU cost.
public enum LoadGenerator {
    /// Runs the scenario on its own threads (never on a Swift concurrency thread); `progress`
    /// is called about once a second with a one-line status.
    public static func run(_ configuration: BenchConfiguration, progress: @escaping @Sendable (String) -> Void = { _ in }) async throws -> BenchReport {
        let configuration = try configuration.validated()
        let outcome: Result<BenchReport, BenchError> = await withCheckedContinuation { continuation in
            do {
                try NativeThread.start(name: "ghost-bench", detached: true) {
                    continuation.resume(returning: Result { () throws(BenchError) in
                        try LoadGenerator.runBlocking(configuration, progress: progress)
                    })
                }
            } catch {
                continuation.resume(returning: .failure(BenchError("cannot start the load generator thread: \(error)")))
            }
        }
        return try outcome.get()
    }

    /// Threads are plain pthreads owning their `BenchThread`; this one coordinates.
    static func runBlocking(_ configuration: BenchConfiguration, progress: @Sendable (String) -> Void) throws(BenchError) -> BenchReport {
        raiseDescriptorLimit(to: configuration.clients * 2 + 256)
        var remotes: [SocketAddress] = []
        for address in configuration.clientAddresses {
            do { remotes.append(try SocketAddress(parsing: address)) } catch { throw BenchError(error.description) }
        }
        let threadCount = min(configuration.threads, configuration.clients)
        let state = RunState(clients: configuration.clients, window: configuration.window, threads: threadCount)
        let pids = configuration.serverPIDs
        // Per worker thread: the relay's, so with one PID, or with several the first (the relay
        // whose metrics endpoint is given, if one is).
        let workerPID = pids.count == 1 || configuration.metricsAddress != nil ? pids.first : nil
        let rssBefore = ProcessCPU.residentKiB(pids: pids)
        // The relay's counters before any client connects: checks the endpoint answers, and is
        // the baseline for the handoffs made while the clients join.
        let countersBefore = try configuration.metricsAddress.map { address throws(BenchError) in try RelayCounters.scrape(address) }
        // Likewise the other relays' and the NATS servers' monitoring endpoints, before anything connects.
        for address in configuration.metricsAddresses.dropFirst() { _ = try RelayCounters.scrape(address) }
        if !configuration.natsMonitorAddresses.isEmpty { _ = try NATSMonitor.scrape(configuration.natsMonitorAddresses) }
        var threads: [BenchThread] = []
        do {
            for number in 0..<threadCount {
                threads.append(try BenchThread(configuration: configuration, state: state, number: number))
            }
        } catch {
            throw BenchError("cannot create a load thread: \(error)")
        }
        for client in 0..<configuration.clients {
            let relay = configuration.relay(of: client)
            try threads[client % threads.count].connect(client: client, to: remotes[relay], host: configuration.clientAddresses[relay])
        }
        var handles: [pthread_t] = []
        for (number, thread) in threads.enumerated() {
            // Handed over: from here on only the new thread touches `thread` (until the join).
            nonisolated(unsafe) let owned = thread
            do {
                handles.append(try NativeThread.start(name: "ghost-bench-\(number)") { owned.run() })
            } catch {
                state.stop.store(true, ordering: .relaxed)
                handles.forEach { pthread_join($0, nil) }
                throw BenchError("cannot start load thread \(number): \(error)")
            }
        }
        // Stops and joins the threads exactly once, on every path out of here.
        var joined = false
        func finish() {
            state.stop.store(true, ordering: .relaxed)
            if !joined { handles.forEach { pthread_join($0, nil) } }
            joined = true
        }
        defer { finish() }

        // Every client joined (or subscribed) before anything is measured.
        let joinDeadline = MonotonicClock.nowNanoseconds() + 60_000_000_000
        while state.ready.load(ordering: .relaxed) < configuration.clients {
            if let failure = state.failure.withLock({ $0 }) { state.stop.store(true, ordering: .relaxed); throw BenchError(failure) }
            if MonotonicClock.nowNanoseconds() > joinDeadline {
                state.stop.store(true, ordering: .relaxed)
                throw BenchError("only \(state.ready.load(ordering: .relaxed)) of \(configuration.clients) clients joined within 60 s (do the rooms \(configuration.roomName(0))… exist?)")
            }
            usleep(2_000)
        }
        let rssJoined = ProcessCPU.residentKiB(pids: pids)
        let start = MonotonicClock.nowNanoseconds() + 50_000_000
        state.start.store(start, ordering: .releasing)
        let measureStart = start + UInt64(configuration.warmup.nanoseconds)
        let measureEnd = measureStart + UInt64(configuration.duration.nanoseconds)
        let drainEnd = measureEnd + UInt64(configuration.drain.nanoseconds)

        // The measured window's samples: taken once when it opens and once when it closes.
        var windowOpened = false
        var windowClosed = false
        var serverCPUAtStart: [Double]?
        var generatorCPUAtStart = 0.0
        var natsAtStart = NATSMessageCounts()
        var natsWindow: NATSMessageCounts?
        var workerCPUAtStart: [Int: Double] = [:]
        var countersAtStart: [Int: WorkerCounters] = [:]
        var relayTotalsAtStart: [WorkerCounters] = []
        var relayCounters: [WorkerCounters] = []
        var relayWindow: RelayWindow?
        var lastDelivered = 0
        var lastTick = MonotonicClock.nowNanoseconds()
        while true {
            let now = MonotonicClock.nowNanoseconds()
            if state.stop.load(ordering: .relaxed) || (now >= drainEnd && windowClosed) { break }
            if !windowOpened && now >= measureStart {
                windowOpened = true
                serverCPUAtStart = ProcessCPU.seconds(pids: pids)
                generatorCPUAtStart = ProcessCPU.selfSeconds()
                workerCPUAtStart = workerPID.map { ProcessCPU.threadSeconds(pid: $0) } ?? [:]
                if let address = configuration.metricsAddress {
                    do throws(BenchError) { countersAtStart = try RelayCounters.scrape(address) } catch { state.fail(error.description) }
                }
                if configuration.metricsAddresses.count > 1 {
                    do throws(BenchError) {
                        relayTotalsAtStart = try RelayCounters.totals(first: countersAtStart, others: configuration.metricsAddresses.dropFirst())
                    } catch { state.fail(error.description) }
                }
                if !configuration.natsMonitorAddresses.isEmpty {
                    do throws(BenchError) { natsAtStart = try NATSMonitor.scrape(configuration.natsMonitorAddresses) } catch { state.fail(error.description) }
                }
            }
            if windowOpened && !windowClosed && now >= measureEnd {
                windowClosed = true
                // Sample CPU at the end of the measured window, not after the drain.
                let serverEnd = ProcessCPU.seconds(pids: pids)
                let generatorEnd = ProcessCPU.selfSeconds()
                let serverEach = serverEnd.flatMap { end in serverCPUAtStart.map { start in zip(end, start).map { $0 - $1 } } } ?? []
                let serverWindow = serverEach.isEmpty ? nil : serverEach.reduce(0, +)
                state.cpuWindow.withLock { $0 = (serverWindow, serverEach, generatorEnd - generatorCPUAtStart) }
                if !configuration.natsMonitorAddresses.isEmpty {
                    do throws(BenchError) { natsWindow = try NATSMonitor.scrape(configuration.natsMonitorAddresses) - natsAtStart } catch { state.fail(error.description) }
                }
                let workerCPUAtEnd = workerPID.map { ProcessCPU.threadSeconds(pid: $0) } ?? [:]
                var countersAtEnd: [Int: WorkerCounters] = [:]
                if let address = configuration.metricsAddress {
                    do throws(BenchError) { countersAtEnd = try RelayCounters.scrape(address) } catch { state.fail(error.description) }
                }
                if configuration.metricsAddresses.count > 1, relayTotalsAtStart.count == configuration.metricsAddresses.count {
                    do throws(BenchError) {
                        let totals = try RelayCounters.totals(first: countersAtEnd, others: configuration.metricsAddresses.dropFirst())
                        relayCounters = zip(totals, relayTotalsAtStart).map { $0.since($1) }
                    } catch { state.fail(error.description) }
                }
                relayWindow = RelayWindow(
                    cpuAtStart: workerCPUAtStart, cpuAtEnd: workerCPUAtEnd,
                    countersBefore: countersBefore, countersAtStart: countersAtStart, countersAtEnd: countersAtEnd)
            }
            if now - lastTick >= 1_000_000_000 {
                let delivered = state.deliveredSoFar.load(ordering: .relaxed)
                let rate = Double(delivered - lastDelivered) / (Double(now - lastTick) / 1e9)
                let phase = now < measureStart ? "warm-up" : now < measureEnd ? "measuring" : "draining"
                let p99 = state.p99SoFar.map { $0.value.load(ordering: .relaxed) }.max() ?? 0
                let elapsed = now > start ? Int(Double(now - start) / 1e9) : 0
                progress("\(phase) \(elapsed)s  delivered/s \(Int(rate))  delivered \(delivered)  p99 so far \(p99) µs")
                lastDelivered = delivered
                lastTick = now
            }
            usleep(5_000)
        }
        finish()
        if let failure = state.failure.withLock({ $0 }) { throw BenchError(failure) }

        var total = ThreadTally()
        for thread in threads { total.add(thread.tally) }
        let cpu = state.cpuWindow.withLock { $0 }
        return BenchReport(
            configuration: configuration, tally: total, serverCPUSeconds: cpu.server, generatorCPUSeconds: cpu.generator,
            serverRSSKiB: (rssBefore ?? 0, rssJoined ?? 0), relay: relayWindow,
            serverCPUSecondsEach: cpu.each, natsMessages: natsWindow, relayCounters: relayCounters)
    }

    private static func raiseDescriptorLimit(to wanted: Int) {
        DescriptorLimit.raise(to: wanted, beyondHardLimit: true)
    }
}

/// CPU time of processes, from /proc and getrusage.
enum ProcessCPU {
    /// User + system CPU seconds of `pid` (fields 14 and 15 of /proc/PID/stat).
    static func seconds(pid: Int32) -> Double? { seconds(statPath: "/proc/\(pid)/stat") }

    /// Each one's CPU seconds, in order; nil if there are none or one cannot be read.
    static func seconds(pids: [Int32]) -> [Double]? {
        var result: [Double] = []
        for pid in pids {
            guard let cpu = seconds(pid: pid) else { return nil }
            result.append(cpu)
        }
        return result.isEmpty ? nil : result
    }

    /// Their resident set sizes summed, in KiB; nil if there are none or one cannot be read.
    static func residentKiB(pids: [Int32]) -> Int? {
        var total = 0
        for pid in pids {
            guard let kib = residentKiB(pid: pid) else { return nil }
            total += kib
        }
        return pids.isEmpty ? nil : total
    }

    /// User + system CPU seconds from a /proc stat file (a process's or a thread's).
    static func seconds(statPath: String) -> Double? {
        guard let file = fopen(statPath, "r") else { return nil }
        defer { fclose(file) }
        var buffer = [CChar](repeating: 0, count: 4096)
        guard fgets(&buffer, Int32(buffer.count), file) != nil else { return nil }
        let line = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        guard let close = line.lastIndex(of: ")") else { return nil }
        let fields = line[line.index(after: close)...].split(separator: " ")
        guard fields.count > 13, let user = Double(fields[11]), let system = Double(fields[12]) else { return nil }
        return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }

    /// Resident set size of `pid` in KiB (VmRSS in /proc/PID/status).
    static func residentKiB(pid: Int32) -> Int? {
        guard let file = fopen("/proc/\(pid)/status", "r") else { return nil }
        defer { fclose(file) }
        var buffer = [CChar](repeating: 0, count: 512)
        while fgets(&buffer, Int32(buffer.count), file) != nil {
            let line = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            if line.hasPrefix("VmRSS:") {
                return Int(line.dropFirst(6).split(whereSeparator: { $0 == " " || $0 == "\t" }).first ?? "")
            }
        }
        return nil
    }

    static func selfSeconds() -> Double {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return Double(usage.ru_utime.tv_sec) + Double(usage.ru_utime.tv_usec) / 1e6
            + Double(usage.ru_stime.tv_sec) + Double(usage.ru_stime.tv_usec) / 1e6
    }
}
