import Glibc

/// Runs a closure on a fresh POSIX thread with exactly the stack size asked for — the way the
/// proxy's classifier threads are created with ``ClassifierBudget/threadStackSize`` — and, when
/// asked, reports how much of that stack the closure used (the stack is filled with a pattern
/// first; the lowest byte changed is the high-water mark).
enum StackThread {
    private final class Box: @unchecked Sendable {
        let body: () -> Void
        init(_ body: @escaping () -> Void) { self.body = body }
    }

    /// Runs `body` on a thread with `stackSize` bytes of stack; returns the bytes of stack used
    /// when `measure` is true, else 0.
    @discardableResult
    static func run(stackSize: Int, measure: Bool = false, _ body: @escaping () -> Void) -> Int {
        let size = (stackSize + 4095) & ~4095
        // A guard region below the stack, as glibc gives its own thread stacks, so an overflow
        // faults instead of writing into whatever is mapped below.
        let guardSize = 64 << 10
        guard let mapping = mmap(nil, size + guardSize, PROT_READ | PROT_WRITE,
                                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0),
              mapping != MAP_FAILED else { fatalError("mmap of \(size) bytes failed") }
        defer { munmap(mapping, size + guardSize) }
        mprotect(mapping, guardSize, PROT_NONE)
        let memory = mapping + guardSize
        if measure { memset(memory, 0xA5, size) }
        var attributes = pthread_attr_t()
        pthread_attr_init(&attributes)
        defer { pthread_attr_destroy(&attributes) }
        pthread_attr_setstack(&attributes, memory, size)
        let box = Unmanaged.passRetained(Box(body)).toOpaque()
        var thread = pthread_t()
        let rc = pthread_create(&thread, &attributes, { arg in
            Unmanaged<Box>.fromOpaque(arg!).takeRetainedValue().body()
            return nil
        }, box)
        precondition(rc == 0, "pthread_create failed: \(rc)")
        pthread_join(thread, nil)
        guard measure else { return 0 }
        let bytes = memory.assumingMemoryBound(to: UInt8.self)
        var low = 0
        while low < size && bytes[low] == 0xA5 { low += 1 }
        return size - low
    }

    /// `body`'s result, computed on a thread with `stackSize` bytes of stack.
    static func value<T>(stackSize: Int, _ body: @escaping () -> T) -> T {
        nonisolated(unsafe) var result: T?
        run(stackSize: stackSize) { result = body() }
        return result!
    }
}
