import FuzzSupport
import Glibc
import Policy

/// The read-only statement classifier: libpg_query's parser (PostgreSQL 15's grammar), the
/// protobuf tree, every walk over it, the statement splitter, and the cache keyed by
/// normalized text (pg_query_normalize) and by LiteralMask.
///
/// The input is SQL; a NUL byte (which the wire protocol cannot carry inside a query)
/// separates a first text A from a second text B. Classification runs on a thread with a
/// 64 MiB stack, more than any loop or classifier thread is given, so what overflows here
/// is a real overflow, not an artefact of libFuzzer's main thread.
///
/// Property, besides not crashing: a cache that has seen A gives for B the decision a fresh
/// classifier gives for B (a cache key that confused a write with a read would let the
/// write through).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzClassifier(_ data: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    let input = FuzzInput(data, count)
    let parts = input.parts(separatedBy: 0, limit: 3).map { String(decoding: $0, as: UTF8.self) }
    runWithStack(classifierStack) {
        let first = parts[0]
        let second = parts.count > 1 ? parts[1] : first
        _ = StatementSplitter.statementOffsets(first)
        let fresh = StatementClassifier().classify(sql: second)
        var cache = CachingStatementClassifier()
        _ = cache.classify(sql: first)
        let cached = cache.classify(sql: second)
        fuzzCheck(cached.isAllowedForReadOnly == fresh.isAllowedForReadOnly,
                  "cache after \(first.debugDescription) decides \(second.debugDescription) differently: "
                    + "cached \(cached), fresh \(fresh)")
        fuzzCheck(cached == fresh, "cached result differs: cached \(cached), fresh \(fresh)")
        fuzzCheck(cache.classify(sql: second) == cached, "a second cached lookup differs")
    }
    return 0
}

/// 64 MiB, or FUZZ_CLASSIFIER_STACK_KB (to see what a smaller stack would survive).
private let classifierStack: Int = {
    if let text = getenv("FUZZ_CLASSIFIER_STACK_KB").map({ String(cString: $0) }), let kib = Int(text), kib >= 64 {
        return kib << 10
    }
    return 64 << 20
}()
