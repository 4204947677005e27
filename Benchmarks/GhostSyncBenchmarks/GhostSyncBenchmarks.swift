// Micro-benchmarks of the relay's building blocks (ordo-one/package-benchmark).
// Run with `make bench`; `make bench-check` compares against the committed baseline thresholds.
// The figures that matter are counts (mallocs per operation), not wall time.
import Benchmark
import CGhostSyncShims
import Glibc
import GhostSync
import Synchronization

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

let benchmarks: @Sendable () -> Void = {
    // What `make bench-check` holds each benchmark to (p90 against Benchmarks/Thresholds):
    // mallocs exactly (they are deterministic, and fan-out must stay at zero) and time only for
    // a doubling, because wall clock on these shared VMs swings by tens of percent. Not
    // measured: instructions (these VMs expose no hardware counters) and CPU time (sampling it
    // reads /proc, which allocates inside the measured window and spoils the malloc counts).
    // Names carry no spaces: package-benchmark writes threshold files with spaces replaced by
    // underscores but looks them up verbatim, so a name with a space never matches.
    let counts: [BenchmarkMetric] = [.wallClock, .mallocCountTotal, .throughput]
    let tolerances: [BenchmarkMetric: BenchmarkThresholds] = [
        .mallocCountTotal: .init(absolute: [.p90: 0]),
        .wallClock: .init(relative: [.p90: 100]),
        .throughput: .init(relative: [.p90: 100]),
    ]
    Benchmark.defaultConfiguration = .init(
        metrics: counts, maxDuration: .seconds(2), maxIterations: 1_000_000, thresholds: tolerances)

    let sender = UUID()
    let payload = [UInt8](repeating: 0x42, count: 64)

    Benchmark("Codec.EncodeBroadcast64B", configuration: .init(scalingFactor: .kilo)) { benchmark in
        let message = ServerWire.broadcast(senderID: sender, data: payload)
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            blackHole(message.encodedFrame())
        }
    }

    Benchmark("Codec.DecodeBroadcast64B", configuration: .init(scalingFactor: .kilo)) { benchmark in
        let frame = Array(ClientWire.broadcast(payload).encodedPayload())
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            blackHole(try? ClientWire(payload: frame))
        }
    }

    // The engine's own decode path: borrowed views, no copy of the data; once only framing,
    // once with every payload parsed as a request too.
    let stream = (0..<1000).flatMap { _ in ClientWire.broadcast(payload).encodedFrame() }
    let perPayload: [(name: String, work: (UnsafeRawBufferPointer) -> Int)] = [
        ("Decoder.Frames1000", { $0.count }),
        ("Decoder.FramesAndMessages1000", { payload in
            if case .broadcast(let data)? = try? ClientRequest(payload: payload) { return data.count }
            return 0
        }),
    ]
    for (name, work) in perPayload {
        Benchmark(name, configuration: .init(scalingFactor: .one)) { benchmark in
            var decoder = FrameDecoder(maxPayload: 64 * 1024)
            benchmark.startMeasurement()
            for _ in benchmark.scaledIterations {
                var total = 0
                _ = try? stream.withUnsafeBytes { raw in
                    try decoder.feed(raw) { payload in
                        total &+= work(payload)
                        return .proceed
                    }
                }
                blackHole(total)
            }
        }
    }

    // Fan-out as the worker does it: encode once into a pooled frame, reference it from every
    // recipient's outbox, then drain the outboxes as a flush would. Steady state: no malloc.
    // The pool and outboxes are made once, outside the closure (which runs per iteration, and
    // whose allocations before `startMeasurement` package-benchmark still counts).
    /// A Broadcast frame from the pool, as the relay path encodes it.
    func broadcastFrame(pool: FramePool) -> SharedFrame {
        let size = 4 + ServerWire.broadcastPayloadSize(dataCount: payload.count)
        let frame = SharedFrame.allocate(count: size, pool: pool)
        payload.withUnsafeBytes { data in
            var writer = WireWriter(frame.buffer)
            writer.writeFrameLength(size - 4)
            ServerWire.writeBroadcastBody(senderID: sender, data: data, into: &writer)
        }
        return frame
    }

    for recipients in [1, 10, 100] {
        let pool = FramePool()
        let outboxes = (0..<recipients).map { _ in OutboxBox() }
        Benchmark("Fanout.Recipients\(recipients)", configuration: .init(scalingFactor: .kilo)) { benchmark in
            let size = 4 + ServerWire.broadcastPayloadSize(dataCount: payload.count)
            benchmark.startMeasurement()
            for _ in benchmark.scaledIterations {
                let frame = broadcastFrame(pool: pool)
                for box in outboxes { box.outbox.append(frame) }
                frame.release()
                for box in outboxes { box.outbox.consume(size) }
            }
        }
    }

    // A room of 100 members, half on TCP and half on WebSocket, as `Worker.fanOut` does it: the
    // frame encoded once, a WebSocket-framed copy made once (both from the pool), each member's
    // outbox referencing its transport's frame, then gathered and consumed in its wire form.
    // Steady state: no malloc, per recipient or per message.
    do {
        let pool = FramePool()
        let outboxes = (0..<100).map { _ in OutboxBox() }
        let vectors = UnsafeMutablePointer<iovec>.allocate(capacity: 16)
        let headers = UnsafeMutableRawPointer.allocate(byteCount: 16 * Outbox.headerStride, alignment: 16)
        Benchmark("Fanout.MixedTransports100", configuration: .init(scalingFactor: .kilo)) { benchmark in
            benchmark.startMeasurement()
            for _ in benchmark.scaledIterations {
                let frame = broadcastFrame(pool: pool)
                let webSocketFrame = SharedFrame.webSocketFraming(of: frame, pool: pool)
                for (index, box) in outboxes.enumerated() { box.outbox.append(index & 1 == 0 ? frame : webSocketFrame) }
                frame.release()
                webSocketFrame.release()
                for (index, box) in outboxes.enumerated() {
                    if index & 1 == 0 {
                        let gathered = box.outbox.gather(into: vectors, limit: 16)
                        box.outbox.consume(gathered.bytes)
                    } else {
                        let gathered = box.outbox.gatherWebSocket(into: vectors, headers: headers, limit: 16)
                        box.outbox.consumeWebSocket(gathered.bytes)
                    }
                }
            }
        }
    }

    // WebSocket input as a worker reads it: 1,000 masked binary messages of a 64-byte broadcast
    // in one buffer, unmasked in place and handed out with no copy. The buffer is re-masked
    // (the same XOR) outside the measurement each round.
    do {
        let message = Array(ClientWire.broadcast(payload).encodedFrame().dropFirst(4))
        let masked = (0..<1000).flatMap { WebSocketFrame.clientFrame(opcode: .binary, payload: message, mask: UInt32($0) &* 0x9E37_79B9) }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: masked.count, alignment: 16)
        Benchmark("WebSocketDecoder.Messages1000", configuration: .init(scalingFactor: .one)) { benchmark in
            var decoder = WebSocketFrameDecoder(maxMessageSize: 64 * 1024)
            for _ in benchmark.scaledIterations {
                masked.withUnsafeBytes { buffer.copyMemory(from: $0) }
                benchmark.startMeasurement()
                var total = 0
                _ = try? decoder.feed(buffer) { event in
                    if case .message(_, let bytes) = event { total &+= bytes.count }
                    return .proceed
                }
                benchmark.stopMeasurement()
                blackHole(total)
            }
        }
    }

    // The cross-shard queue between two pinned threads, as two workers use it: the producer
    // posts through its ring (what finds the ring full waits in its backlog and is retried, as
    // a worker does every iteration), the consumer drains in place. The mailboxes are made
    // once, outside the measured closure (allocations in the closure count even before
    // `startMeasurement`); the consumer thread is started per run, as before.
    let consumerMailbox = try! Mailbox(owner: 1, workerCount: 2)
    let producerMailbox = try! Mailbox(owner: 0, workerCount: 2)
    let consumerStarted = Flag()
    Benchmark("Mailbox.PostAndDrain", configuration: .init(scalingFactor: .kilo)) { benchmark in
        let total = benchmark.scaledIterations.count
        consumerStarted.value.store(0, ordering: .relaxed)
        let consumer = Thread.start(cpu: 1) {
            consumerStarted.value.store(1, ordering: .releasing)
            var received = 0
            while received < total { consumerMailbox.drain { _ in received += 1 } }
        }
        _ = Thread.pin(cpu: 0)
        // The new thread inherits this thread's CPU 0 until it pins itself to CPU 1: let it
        // get there first, or a producer waiting for room would hold CPU 0 for a whole tick.
        while consumerStarted.value.load(ordering: .acquiring) == 0 { sched_yield() }
        benchmark.startMeasurement()
        for index in benchmark.scaledIterations {
            consumerMailbox.post(.roomDeleted(roomID: "", generation: UInt64(index)), from: producerMailbox)
            if producerMailbox.hasBacklog { producerMailbox.retryBacklog() }
        }
        while producerMailbox.hasBacklog { producerMailbox.retryBacklog() }
        pthread_join(consumer, nil)
        benchmark.stopMeasurement()
    }

    // Timer-wheel churn: every connection re-arms once per ping interval.
    Benchmark("TimerWheel.Churn10000", configuration: .init(scalingFactor: .one)) { benchmark in
        var due: [TimerWheel.Entry] = []
        due.reserveCapacity(10_000)
        benchmark.startMeasurement()
        for round in benchmark.scaledIterations {
            var wheel = TimerWheel(now: 0)
            for owner in 0..<10_000 {
                wheel.schedule(.init(owner: Int32(owner), token: UInt64(round), deadline: Int64(owner % 13_000)))
            }
            wheel.advance(to: 13_000, collecting: &due)
            blackHole(due.count)
            due.removeAll(keepingCapacity: true)
        }
    }
}

/// An outbox on the heap, as a connection holds it (`Outbox` is not copyable, so no array of them).
final class OutboxBox {
    var outbox = Outbox()
}

/// Plain pthreads pinned to CPUs, for the cross-thread benchmark.
enum Thread {
    static func pin(cpu: Int) -> Int32 {
        gs_pin_current_thread(Int32(cpu))
    }

    static func start(cpu: Int, _ body: @escaping @Sendable () -> Void) -> pthread_t {
        try! NativeThread.start {
            _ = Thread.pin(cpu: cpu)
            body()
        }
    }
}

/// Set by the benchmark's consumer thread once it runs on its own CPU.
final class Flag: Sendable {
    let value = Atomic<Int>(0)
}
