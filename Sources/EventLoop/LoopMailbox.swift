import Glibc
import CPortcullisShims

/// The only way into an event loop from another thread: a locked queue of control messages and
/// an eventfd that wakes the loop. Used for shutdown, reload and hand-offs — never per message.
public final class LoopMailbox: @unchecked Sendable {
    let wakeFD: Int32
    private var lock = pthread_mutex_t()
    private var pending: [any Sendable] = []

    init() throws(Errno) {
        wakeFD = try syscallValue { eventfd(0, Int32(EFD_NONBLOCK | EFD_CLOEXEC)) }
        pthread_mutex_init(&lock, nil)
    }

    deinit {
        pthread_mutex_destroy(&lock)
        closeDescriptor(wakeFD)
    }

    public func post(_ message: any Sendable) {
        pthread_mutex_lock(&lock)
        pending.append(message)
        pthread_mutex_unlock(&lock)
        var one: UInt64 = 1
        _ = try? syscall { Glibc.write(wakeFD, &one, 8) }
    }

    func drain() -> [any Sendable] {
        var counter: UInt64 = 0
        _ = try? syscall { Glibc.read(wakeFD, &counter, 8) }
        pthread_mutex_lock(&lock)
        let messages = pending
        pending.removeAll()
        pthread_mutex_unlock(&lock)
        return messages
    }
}
