import CPgQuery

/// A ``StatementClassifier`` with a cache keyed by the query text as `pg_query_normalize`
/// rewrites it: every literal replaced by `$n`, so `... WHERE id = 1` and `... WHERE id = 2`
/// share one entry.
///
/// Why the normalized text and not `pg_query_fingerprint`: the fingerprint is a 64-bit
/// non-cryptographic hash, so a client could search for a write statement whose fingerprint
/// equals a cached read's and be let through. The normalized text is compared exactly.
///
/// Where a literal decides, the result is not cached at all: `set_config('role', ...)`
/// versus `set_config('search_path', ...)` normalize to the same text, as can
/// `EXPLAIN (ANALYZE 1)` and transaction modes given as values. The classifier reports such
/// literal-dependent decisions (``StatementClassifier/classifyTrackingLiterals(sql:)``), and
/// they are classified afresh every time. SET and RESET names are identifiers, not literals,
/// so they stay in the normalized text and in the key. Syntax errors and texts refused by
/// ``ClassifierBudget`` (which can depend on the thread) are never cached.
///
/// Eviction: when `capacity` entries are held the cache is emptied — simple, bounded memory,
/// and a working set of distinct statement shapes refills it quickly.
public struct CachingStatementClassifier: Sendable {
    public let capacity: Int
    private let classifier = StatementClassifier()
    private var entries: [String: ClassificationResult] = [:]
    /// Keyed by ``LiteralMask`` keys, only for shapes whose mask was proven equal to the
    /// normalized text (a separate dictionary, so the two key spaces never meet).
    private var fastEntries: [String: ClassificationResult] = [:]

    public init(capacity: Int = 4096) {
        self.capacity = max(1, capacity)
    }

    public var count: Int { entries.count }
    /// Shapes also reachable without `pg_query_normalize`.
    public var fastCount: Int { fastEntries.count }

    public mutating func classify(sql: String) -> ClassificationResult {
        let mask = LiteralMask(sql)
        if let mask, let cached = fastEntries[mask.key] { return cached }
        // pg_query_normalize recurses over the tree too: the nesting check comes first.
        // (A fast-key hit above has the tokens, bar literals, of a text that passed it.)
        if let refusal = ClassifierBudget.nestingRefusal(for: sql) {
            return ClassificationResult(statements: [], syntaxError: refusal)
        }
        guard let key = Self.normalized(sql) else {
            return classifier.classifyTrackingLiterals(sql: sql, nestingChecked: true).result
        }
        if let cached = entries[key] {
            rememberFast(mask, normalizedKey: key, result: cached)
            return cached
        }
        let (result, dependsOnLiterals) = classifier.classifyTrackingLiterals(sql: sql, nestingChecked: true)
        if result.syntaxError == nil && !dependsOnLiterals {
            if entries.count >= capacity { entries.removeAll(keepingCapacity: true) }
            entries[key] = result
            rememberFast(mask, normalizedKey: key, result: result)
        }
        return result
    }

    private mutating func rememberFast(_ mask: LiteralMask?, normalizedKey: String, result: ClassificationResult) {
        guard let mask, mask.normalizedForm() == normalizedKey else { return }
        if fastEntries.count >= capacity { fastEntries.removeAll(keepingCapacity: true) }
        fastEntries[mask.key] = result
    }

    /// The literal-free text of `sql` (`pg_query_normalize`: each literal replaced by `$n`), or
    /// nil when libpg_query cannot scan it or ``LexerCost`` keeps the text from its lexer.
    public static func normalized(_ sql: String) -> String? {
        guard LexerCost.isBounded(sql) else { return nil }
        let result = pg_query_normalize(sql)
        defer { pg_query_free_normalize_result(result) }
        guard result.error == nil, let text = result.normalized_query else { return nil }
        return String(cString: text)
    }
}

// MARK: - Hits on the owner's thread, misses on another

extension CachingStatementClassifier {
    /// What classifying a miss produced: computed on any thread by ``classifyMiss(sql:)`` (it
    /// parses, so it may take long for a large text) and then handed to the cache's owner,
    /// which remembers it with ``remember(_:)``.
    public struct Miss: Sendable {
        public let result: ClassificationResult
        let normalizedKey: String?
        /// The ``LiteralMask`` key, when it provably agrees with `normalizedKey`.
        let fastKey: String?
        let cacheable: Bool
    }

    /// The cached result for `sql` found without parsing (the ``LiteralMask`` key), or nil.
    /// Costs one scan of the text.
    public func cachedResult(sql: String) -> ClassificationResult? {
        guard !fastEntries.isEmpty, let mask = LiteralMask(sql) else { return nil }
        return fastEntries[mask.key]
    }

    /// Classifies `sql` as ``classify(sql:)`` does on a miss, without touching any cache.
    /// - Parameter keyed: compute the cache keys (skip for texts too large to cache).
    public static func classifyMiss(sql: String, keyed: Bool) -> Miss {
        // Before pg_query_normalize, which lexes too (``LexerCost``).
        if let refusal = LexerCost.refusal(for: sql) {
            return Miss(result: ClassificationResult(statements: [], syntaxError: refusal), normalizedKey: nil, fastKey: nil, cacheable: false)
        }
        let classifier = StatementClassifier()
        guard keyed, let key = normalized(sql) else {
            return Miss(result: classifier.classify(sql: sql), normalizedKey: nil, fastKey: nil, cacheable: false)
        }
        let (result, dependsOnLiterals) = classifier.classifyTrackingLiterals(sql: sql)
        let cacheable = result.syntaxError == nil && !dependsOnLiterals
        var fastKey: String?
        if cacheable, let mask = LiteralMask(sql), mask.normalizedForm() == key { fastKey = mask.key }
        return Miss(result: result, normalizedKey: key, fastKey: fastKey, cacheable: cacheable)
    }

    /// Stores what ``classifyMiss(sql:keyed:)`` found, as ``classify(sql:)`` would have.
    public mutating func remember(_ miss: Miss) {
        guard miss.cacheable, let key = miss.normalizedKey else { return }
        if entries.count >= capacity { entries.removeAll(keepingCapacity: true) }
        entries[key] = miss.result
        if let fastKey = miss.fastKey {
            if fastEntries.count >= capacity { fastEntries.removeAll(keepingCapacity: true) }
            fastEntries[fastKey] = miss.result
        }
    }
}
