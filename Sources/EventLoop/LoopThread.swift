import Glibc
import CPortcullisShims

/// Starts a closure on a new POSIX thread (no Foundation).
public enum LoopThread {
    private final class Box {
        let body: () -> Void
        init(_ body: @escaping () -> Void) { self.body = body }
    }

    public static func start(name: String, _ body: @escaping @Sendable () -> Void) -> pthread_t {
        let threadName = String(name.prefix(15))
        let box = Unmanaged.passRetained(Box({ _ = pc_set_thread_name(threadName); body() })).toOpaque()
        var thread = pthread_t()
        let rc = pthread_create(&thread, nil, { arg in
            let box = Unmanaged<Box>.fromOpaque(arg!).takeRetainedValue()
            box.body()
            return nil
        }, box)
        precondition(rc == 0, "pthread_create failed: \(rc)")
        return thread
    }

    /// For threads nobody waits for: their resources go when they end.
    public static func detach(_ thread: pthread_t) {
        _ = pthread_detach(thread)
    }

    public static func join(_ thread: pthread_t) {
        _ = pthread_join(thread, nil)
    }
}
