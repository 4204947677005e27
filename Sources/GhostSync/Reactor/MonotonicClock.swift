import Glibc

/// Milliseconds on CLOCK_MONOTONIC: the only time the engine's timers read. (vDSO: no syscall.)
package enum MonotonicClock {
    package static func nowMilliseconds() -> Int64 {
        var time = timespec()
        clock_gettime(CLOCK_MONOTONIC, &time)
        return Int64(time.tv_sec) * 1000 + Int64(time.tv_nsec) / 1_000_000
    }
}

extension Duration {
    /// Whole milliseconds, rounded up so a short non-zero duration never becomes 0.
    var wholeMilliseconds: Int64 {
        let (seconds, attoseconds) = components
        let millis = seconds * 1000 + attoseconds / 1_000_000_000_000_000
        let rest = attoseconds % 1_000_000_000_000_000
        return rest > 0 ? millis + 1 : millis
    }
}

extension MonotonicClock {
    /// Nanoseconds on CLOCK_MONOTONIC, for measuring short intervals (loop iterations).
    package static func nowNanoseconds() -> UInt64 {
        var time = timespec()
        clock_gettime(CLOCK_MONOTONIC, &time)
        return UInt64(time.tv_sec) * 1_000_000_000 + UInt64(time.tv_nsec)
    }
}
