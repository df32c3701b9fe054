#if canImport(Glibc)
import Glibc
#endif

/// libFuzzer's input as bytes, and the small ways the targets carve it up.
public struct FuzzInput {
    public let bytes: [UInt8]

    public init(_ data: UnsafePointer<UInt8>?, _ count: Int) {
        bytes = data.map { Array(UnsafeBufferPointer(start: $0, count: count)) } ?? []
    }

    /// The input as text, as the code under test receives it from a file or a socket:
    /// invalid UTF-8 is replaced (String(decoding:) is what every caller uses).
    public var text: String { String(decoding: bytes, as: UTF8.self) }

    /// Up to `limit` parts separated by `separator`; the last part keeps any further separators.
    public func parts(separatedBy separator: UInt8, limit: Int) -> [[UInt8]] {
        bytes.split(separator: separator, maxSplits: limit - 1, omittingEmptySubsequences: false).map(Array.init)
    }
}

/// A property the target checks did not hold: a crash, so libFuzzer keeps the input.
public func fuzzCheck(_ condition: @autoclosure () -> Bool, _ message: @autoclosure () -> String,
                      file: StaticString = #fileID, line: UInt = #line) {
    if !condition() { fatalError("fuzz property violated: \(message())", file: file, line: line) }
}

/// Runs `body` on a fresh thread with a `stackBytes` stack and waits for it: code whose stack
/// use grows with the input (the SQL parser and the tree walks) gets the stack a classifier
/// thread would have, not whatever libFuzzer's main thread happens to have.
public func runWithStack(_ stackBytes: Int, _ body: @escaping () -> Void) {
    final class Box { let body: () -> Void; init(_ body: @escaping () -> Void) { self.body = body } }
    var attributes = pthread_attr_t()
    pthread_attr_init(&attributes)
    defer { pthread_attr_destroy(&attributes) }
    pthread_attr_setstacksize(&attributes, stackBytes)
    let context = Unmanaged.passRetained(Box(body)).toOpaque()
    var thread = pthread_t()
    let status = pthread_create(&thread, &attributes, { raw in
        let box = Unmanaged<Box>.fromOpaque(raw!).takeRetainedValue()
        // A signal stack of its own, so that when this thread overflows its stack libFuzzer's
        // SIGSEGV handler (installed with SA_ONSTACK) can still run and save the input.
        let signalStackSize = 256 << 10
        let signalStack = UnsafeMutableRawPointer.allocate(byteCount: signalStackSize, alignment: 16)
        var alternate = stack_t(ss_sp: signalStack, ss_flags: 0, ss_size: signalStackSize)
        var previous = stack_t()
        sigaltstack(&alternate, &previous)
        box.body()
        sigaltstack(&previous, nil)
        signalStack.deallocate()
        return nil
    }, context)
    guard status == 0 else { fatalError("pthread_create failed: \(status)") }
    pthread_join(thread, nil)
}
