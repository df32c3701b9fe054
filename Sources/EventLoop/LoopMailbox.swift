import Glibc
import CPortcullisShims
import Synchronization

/// The only way into an event loop from another thread: a locked queue of control messages and
/// an eventfd that wakes the loop. Used for shutdown, reload and hand-offs — never per message.
public final class LoopMailbox: Sendable {
    let wakeFD: Int32
    private let pending = Mutex<[any Sendable]>([])

    init() throws(Errno) {
        wakeFD = try syscallValue { eventfd(0, Int32(EFD_NONBLOCK | EFD_CLOEXEC)) }
    }

    deinit {
        closeDescriptor(wakeFD)
    }

    public func post(_ message: any Sendable) {
        pending.withLock { $0.append(message) }
        var one: UInt64 = 1
        _ = try? syscall { Glibc.write(wakeFD, &one, 8) }
    }

    func drain() -> [any Sendable] {
        var counter: UInt64 = 0
        _ = try? syscall { Glibc.read(wakeFD, &counter, 8) }
        return pending.withLock { pending in
            defer { pending.removeAll() }
            return pending
        }
    }
}
