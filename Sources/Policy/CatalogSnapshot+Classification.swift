/// Applying a ``CatalogSnapshot`` to classification results.
///
/// The check runs after the cache: cached results hold each statement's
/// ``StatementClassification/objects`` and ``StatementClassification/lookups``, which depend on
/// the text's identifiers and operators only (never on literals), so the same cached entry stays
/// right when the snapshot is replaced.
extension CatalogSnapshot {
    /// `result` with every otherwise-allowed statement refused that names a restricted relation,
    /// or a function, operator or type name that may resolve to a user-defined object.
    public func applied(to result: ClassificationResult) -> ClassificationResult {
        guard !isEmpty, result.syntaxError == nil else { return result }
        // Most statements pass: build a new result only once one is refused.
        var statements: [StatementClassification]? = nil
        for (index, statement) in result.statements.enumerated() {
            guard let refusal = catalogRefusal(for: statement) else { continue }
            if statements == nil { statements = result.statements }
            statements?[index] = statement.refused(refusal)
        }
        guard let statements else { return result }
        return ClassificationResult(statements: statements, syntaxError: nil)
    }

    /// Why this otherwise-allowed statement is refused with this snapshot, or nil.
    private func catalogRefusal(for statement: StatementClassification) -> Refusal? {
        guard statement.refusal == nil else { return nil }
        if let global = globalRefusal { return global }
        // LOCK runs no query (and pg_dump locks every table it dumps).
        guard statement.commandTag != "LOCK TABLE" else { return nil }
        if let refusal = nonASCIINameRefusal(for: statement) { return refusal }
        for object in statement.objects {
            if let relation = restriction(for: object), !(relation.byColumnType && statement.copiesStoredRows) {
                return Self.refusal(relation)
            }
            if let refusal = userObjectRefusal(for: object) { return refusal }
        }
        for lookup in statement.lookups {
            if let refusal = userObjectRefusal(for: lookup) { return refusal }
        }
        return runtimeJSONRefusal(for: statement)
    }
}

extension CatalogSnapshot {
    /// In a database whose encoding is not UTF8, a name with a non-ASCII character may not be
    /// the name the gate matched: the server converts the UTF-8 text to its encoding before it
    /// parses, then truncates identifiers to 63 bytes of *that* encoding and, in single-byte
    /// encodings, down-cases non-ASCII letters of unquoted names by the locale
    /// (src/backend/parser/scansup.c truncate_identifier, downcase_identifier); libpg_query
    /// does both in UTF-8. ASCII names read the same in every server encoding.
    func nonASCIINameRefusal(for statement: StatementClassification) -> Refusal? {
        guard let encoding = nonUTF8ServerEncoding else { return nil }
        let names = statement.objects.flatMap { [$0.name, $0.schema ?? ""] } + statement.lookups.flatMap { [$0.name, $0.schema ?? ""] }
        guard let name = names.first(where: { $0.utf8.contains { $0 >= 0x80 } }) else { return nil }
        return Refusal(sqlState: "25006",
                       message: "the name \"\(name)\" is not allowed for a read-only identity: it is not ASCII, and this database's encoding is \(encoding), in which PostgreSQL may read it as another name",
                       isPostgreSQLText: false)
    }
}

extension CachingStatementClassifier {
    /// ``classify(sql:)`` and then the catalog check of `catalog` for the session's database.
    public mutating func classify(sql: String, catalog: CatalogSnapshot) -> ClassificationResult {
        catalog.applied(to: classify(sql: sql))
    }
}

extension StatementClassifier {
    /// ``classify(sql:)`` and then the catalog check of `catalog`.
    public func classify(sql: String, catalog: CatalogSnapshot) -> ClassificationResult {
        catalog.applied(to: classify(sql: sql))
    }
}
