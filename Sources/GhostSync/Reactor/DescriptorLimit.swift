import Glibc

/// The process's open-file limit (RLIMIT_NOFILE).
public enum DescriptorLimit {
    /// Raises the soft limit to at least `wanted` descriptors, up to the hard limit; past the
    /// hard limit too when `beyondHardLimit` and the process may (root, CAP_SYS_RESOURCE).
    /// Returns the soft limit now in force.
    @discardableResult
    public static func raise(to wanted: Int, beyondHardLimit: Bool = false) -> Int {
        var limit = rlimit()
        getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        guard limit.rlim_cur < rlim_t(wanted) else { return Int(limit.rlim_cur) }
        if beyondHardLimit && limit.rlim_max < rlim_t(wanted) {
            var raised = limit
            raised.rlim_max = rlim_t(wanted)
            raised.rlim_cur = rlim_t(wanted)
            if setrlimit(Int32(RLIMIT_NOFILE.rawValue), &raised) == 0 { return wanted }
        }
        limit.rlim_cur = min(limit.rlim_max, rlim_t(wanted))
        setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        return Int(limit.rlim_cur)
    }
}
