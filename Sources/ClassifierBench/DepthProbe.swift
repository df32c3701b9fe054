import CPgQuery
import Glibc
import Policy

// `portcullis-classifier-bench depth`: the stack and time a statement at the nesting limit
// takes, per hostile shape, on a thread with ClassifierBudget.threadStackSize of stack (the
// figures in docs/READONLY.md, "Stack and size budget"; run it in debug and release builds).

private final class Box: @unchecked Sendable {
    let body: () -> Void
    init(_ body: @escaping () -> Void) { self.body = body }
}

/// Runs `body` on a thread with `stackSize` bytes of pattern-filled stack; returns the bytes used.
private func stackUsed(stackSize: Int, _ body: @escaping () -> Void) -> Int {
    let guardSize = 64 << 10 // below the stack, so an overflow faults
    guard let mapping = mmap(nil, stackSize + guardSize, PROT_READ | PROT_WRITE,
                             MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0),
          mapping != MAP_FAILED else { fatalError("mmap failed") }
    defer { munmap(mapping, stackSize + guardSize) }
    mprotect(mapping, guardSize, PROT_NONE)
    let memory = mapping + guardSize
    memset(memory, 0xA5, stackSize)
    var attributes = pthread_attr_t()
    pthread_attr_init(&attributes)
    pthread_attr_setstack(&attributes, memory, stackSize)
    var thread = pthread_t()
    let box = Unmanaged.passRetained(Box(body)).toOpaque()
    precondition(pthread_create(&thread, &attributes, { arg in
        Unmanaged<Box>.fromOpaque(arg!).takeRetainedValue().body()
        return nil
    }, box) == 0)
    pthread_join(thread, nil)
    pthread_attr_destroy(&attributes)
    let bytes = memory.assumingMemoryBound(to: UInt8.self)
    var low = 0
    while low < stackSize && bytes[low] == 0xA5 { low += 1 }
    return stackSize - low
}

private func oneDecimal(_ value: Double) -> String {
    let tenths = Int((value * 10).rounded())
    return "\(tenths / 10).\(tenths % 10)"
}

private func milliseconds(_ body: () -> Void) -> Double {
    let elapsed = ContinuousClock().measure(body)
    let (seconds, attoseconds) = elapsed.components
    return Double(seconds) * 1e3 + Double(attoseconds) / 1e15
}

/// The largest `n` whose bound is within `limit` (bounds grow linearly with `n`).
private func largestWithin(_ limit: Int, _ build: (Int) -> String) -> Int {
    let one = ClassifierBudget.nestingBound(of: build(1)) ?? 0
    let slope = (ClassifierBudget.nestingBound(of: build(2)) ?? 0) - one
    return (limit - one) / max(1, slope) + 1
}

func runDepthProbe() {
    let limit = ClassifierBudget.maxNestingDepth
    let chains: [(String, (Int) -> String)] = [
        ("1+1+…", { "select 1" + String(repeating: "+1", count: $0) }),
        ("x::int::int…", { "select 1" + String(repeating: "::int", count: $0) }),
        ("IS TRUE chain", { "select true" + String(repeating: " is true", count: $0) }),
        ("UNION chain", { "select 1" + String(repeating: " union select 1", count: $0) }),
        ("JOIN chain", { n in "select 1 from t0" + (1...n).map { " join t\($0) on true" }.joined() }),
    ]
    let others: [(String, String)] = [
        ("(select (select …)) ×3000", "select " + String(repeating: "(select ", count: 3_000) + "1" + String(repeating: ")", count: 3_000)),
        ("abs(abs(…)) ×4900", "select " + String(repeating: "abs(", count: 4_900) + "1" + String(repeating: ")", count: 4_900)),
        ("AND chain ×100000", "select 1 where true" + String(repeating: " and true", count: 100_000)),
        ("IN list ×1000000", "select 1 from t where a in (1" + String(repeating: ",1", count: 1_000_000) + ")"),
        ("string literal 15 MB", "select '" + String(repeating: "x", count: 15 << 20) + "'"),
        ("string literal 17 MB", "select '" + String(repeating: "x", count: 17 << 20) + "'"),
    ]
    print("threadStackSize \(ClassifierBudget.threadStackSize) bytes, maxNestingDepth \(limit), maxParseTreeBytes \(ClassifierBudget.maxParseTreeBytes)")
    print("| shape | n | bound | text bytes | tree bytes | outcome | stack used | classify ms | refuse n+1 ms |")
    print("| --- | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: |")
    let only = CommandLine.arguments.dropFirst(2).first
    func row(_ name: String, n: Int?, sql: String, beyond: String?) {
        if let only, !name.contains(only) { return }
        nonisolated(unsafe) var result: ClassificationResult?
        nonisolated(unsafe) var classifyTime = 0.0
        nonisolated(unsafe) var refuseTime = 0.0
        nonisolated(unsafe) var refusedBeyond: Refusal?
        let used = stackUsed(stackSize: ClassifierBudget.threadStackSize) {
            classifyTime = milliseconds { result = StatementClassifier().classify(sql: sql) }
            if let beyond {
                refuseTime = milliseconds { refusedBeyond = StatementClassifier().classify(sql: beyond).firstRefusal }
            }
        }
        let outcome = result?.firstRefusal.map { "\($0.sqlState) \($0.message.prefix(40))" } ?? "allowed"
        let refused = refusedBeyond.map { "\(oneDecimal(refuseTime)) (\($0.sqlState))" } ?? "-"
        let bound = ClassifierBudget.nestingBound(of: sql).map(String.init) ?? "-"
        nonisolated(unsafe) var treeBytes = 0
        _ = stackUsed(stackSize: ClassifierBudget.threadStackSize) {
            let parsed = pg_query_parse_protobuf(sql)
            treeBytes = parsed.parse_tree.len
            pg_query_free_protobuf_parse_result(parsed)
        }
        print("| \(name) | \(n.map(String.init) ?? "-") | \(bound) | \(sql.utf8.count) | \(treeBytes) | \(outcome) | \(used) | \(oneDecimal(classifyTime)) | \(refused) |")
    }
    for (name, build) in chains {
        if let only, !name.contains(only) { continue }
        let n = largestWithin(limit, build)
        row(name, n: n, sql: build(n), beyond: build(n + 1))
    }
    for (name, sql) in others { row(name, n: nil, sql: sql, beyond: nil) }
    // The everyday lane's worst case: each chain as long as fits in
    // ClassifierBudget.everydayTextLimit (texts that size share threads with everyone's misses).
    let everyday = ClassifierBudget.everydayTextLimit
    print("\nwithin the everyday text limit (\(everyday) bytes):\n")
    print("| shape | n | bound | text bytes | outcome | classify ms |")
    print("| --- | ---: | ---: | ---: | --- | ---: |")
    for (name, build) in chains {
        if let only, !name.contains(only) { continue }
        var n = 1
        while build(n * 2).utf8.count <= everyday { n *= 2 }
        var step = n / 2
        while step > 0 { if build(n + step).utf8.count <= everyday { n += step }; step /= 2 }
        let sql = build(n)
        nonisolated(unsafe) var result: ClassificationResult?
        nonisolated(unsafe) var time = 0.0
        _ = stackUsed(stackSize: ClassifierBudget.threadStackSize) {
            // Best of three: the figure is the work, not this machine's noise.
            time = (0..<3).map { _ in milliseconds { result = StatementClassifier().classify(sql: sql) } }.min() ?? 0
        }
        let outcome = result?.firstRefusal.map { "\($0.sqlState)" } ?? "allowed"
        let bound = ClassifierBudget.nestingBound(of: sql).map(String.init) ?? "-"
        print("| \(name) | \(n) | \(bound) | \(sql.utf8.count) | \(outcome) | \(oneDecimal(time)) |")
    }
    let inList = "select 1 from t where a in (1" + String(repeating: ",1", count: 1_000_000) + ")"
    let lexing = milliseconds { _ = ClassifierBudget.nestingBound(of: inList) }
    print("\nnesting bound of the 1 000 000-element IN list (\(inList.utf8.count) bytes): \(oneDecimal(lexing)) ms")
    let small = "select id, name from accounts where id = 42"
    let check = milliseconds { for _ in 0..<100_000 { _ = ClassifierBudget.nestingBound(of: small) } } * 10
    print("nesting bound of a \(small.utf8.count)-byte statement (lexer; skipped below \(limit / 4) bytes): \(String(Int(check))) ns")
}
