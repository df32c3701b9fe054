import Glibc
import CPortcullisShims

/// Starts a closure on a new POSIX thread (no Foundation).
public enum LoopThread {
    private final class Box {
        let body: () -> Void
        init(_ body: @escaping () -> Void) { self.body = body }
    }

    /// - Parameter stackSize: bytes of stack for the thread; nil = the default.
    public static func start(name: String, stackSize: Int? = nil, _ body: @escaping @Sendable () -> Void) -> pthread_t {
        let threadName = String(name.prefix(15))
        let box = Unmanaged.passRetained(Box({ _ = pc_set_thread_name(threadName); body() })).toOpaque()
        var thread = pthread_t()
        var attributes = pthread_attr_t()
        pthread_attr_init(&attributes)
        defer { pthread_attr_destroy(&attributes) }
        if let stackSize { precondition(pthread_attr_setstacksize(&attributes, stackSize) == 0, "bad stack size \(stackSize)") }
        let rc = pthread_create(&thread, &attributes, { arg in
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
