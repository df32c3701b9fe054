import CPgQuery

/// Where each statement of a multi-statement query string starts, in UTF-8 bytes, as
/// PostgreSQL's raw parser records it (RawStmt.stmt_location / stmt_len, parsenodes.h).
///
/// Kept apart from ``ClassificationResult`` on purpose: classifications are cached under the
/// literal-free text, and literals of different lengths move every later statement.
/// Locations are only needed on the rare refusal path, so they are computed afresh there.
public enum StatementSplitter {
    /// The byte offset at which each statement starts, or nil when the text does not parse.
    public static func statementOffsets(_ sql: String) -> [Int]? {
        guard LexerCost.isBounded(sql) else { return nil }
        let result = pg_query_split_with_parser(sql)
        defer { pg_query_free_split_result(result) }
        guard result.error == nil else { return nil }
        var offsets: [Int] = []
        offsets.reserveCapacity(Int(result.n_stmts))
        for index in 0..<Int(result.n_stmts) {
            guard let statement = result.stmts[index] else { return nil }
            offsets.append(Int(statement.pointee.stmt_location))
        }
        return offsets
    }

    /// The raw parser's error for `sql`, or nil when it parses. Only the raw parse runs (its
    /// Bison stack is on the heap), nothing that recurses over the tree.
    static func syntaxError(_ sql: String) -> Refusal? {
        let result = pg_query_split_with_parser(sql)
        defer { pg_query_free_split_result(result) }
        guard let error = result.error else { return nil }
        return Refusal.syntaxError(error.pointee)
    }
}
