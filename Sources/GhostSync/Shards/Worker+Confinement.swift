import Glibc

// Debug-build checks of the worker's thread confinement, in the style of swift-nio's
// `assertInEventLoop()`. Worker state is confined by design (no lock, unchecked exclusivity);
// these checks make a violation trap at once in debug builds (`make test`, the sanitizer runs)
// instead of corrupting memory later. Release builds compile them to nothing.
extension Worker {
    /// Traps unless called on this worker's own thread.
    @inline(__always)
    func assertOnWorkerThread(_ function: StaticString = #function) {
        #if DEBUG
        precondition(pthread_equal(thread, pthread_self()) != 0, "\(function) called off worker \(index)'s thread")
        #endif
    }

    /// Traps unless `connection` is held by this worker (registered here and not handed off).
    @inline(__always)
    func assertOwner(of connection: Connection, _ function: StaticString = #function) {
        #if DEBUG
        assertOnWorkerThread(function)
        precondition(connection.owner == ObjectIdentifier(self), "\(function): worker \(index) touched a connection it does not hold")
        #endif
    }

    /// Traps when called while a hook runs on this worker. Everything that changes rooms, the
    /// connection table or the flush list asserts it: a hook that could reach them (through a
    /// `ServerHandle` call running inline) would invalidate the unretained room and flush-list
    /// pointers of the frame being handled. `ServerHandle` methods therefore never run worker
    /// code inline; they post to the mailbox, which is drained outside hooks.
    @inline(__always)
    func assertNotInHook(_ function: StaticString = #function) {
        #if DEBUG
        precondition(hookDepth == 0, "\(function) called from inside a ServerHandler hook on worker \(index)")
        #endif
    }

    /// Runs a `ServerHandler` hook, marking the worker as inside it (debug builds).
    @inline(__always)
    func callingHook<Result>(_ hook: () -> Result) -> Result {
        #if DEBUG
        hookDepth += 1
        defer { hookDepth -= 1 }
        #endif
        return hook()
    }
}
