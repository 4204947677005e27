import CGhostSyncShims
import Glibc

/// A plain pthread running a closure: for loops that block in `epoll_wait` or `read` and so must
/// never occupy a thread of Swift's cooperative pool (workers, the client reactor, the
/// operations endpoint, load-generator threads, standard-input readers).
package enum NativeThread {
    /// Starts `body` on a new thread, named `name` when given (the kernel keeps 15 bytes), and
    /// returns it for `pthread_join`; a `detached` thread cleans up after itself instead.
    @discardableResult
    package static func start(
        name: String? = nil, detached: Bool = false, _ body: @escaping @Sendable () -> Void
    ) throws(SystemError) -> pthread_t {
        final class Context: Sendable {
            let name: String?
            let body: @Sendable () -> Void
            init(name: String?, body: @escaping @Sendable () -> Void) {
                self.name = name
                self.body = body
            }
        }
        // The new thread takes over this retain; if it never starts, it is given back here.
        let context = Unmanaged.passRetained(Context(name: name, body: body)).toOpaque()
        var thread = pthread_t()
        let result = pthread_create(&thread, nil, { raw in
            let context = Unmanaged<Context>.fromOpaque(raw!).takeRetainedValue()
            if let name = context.name { _ = gs_name_current_thread(name) }
            context.body()
            return nil
        }, context)
        if result != 0 {
            Unmanaged<Context>.fromOpaque(context).release()
            throw SystemError(call: "pthread_create", errno: result)
        }
        if detached { pthread_detach(thread) }
        return thread
    }
}
