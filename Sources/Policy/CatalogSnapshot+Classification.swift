/// Applying a ``CatalogSnapshot`` to classification results.
///
/// The check runs after the cache: cached results hold each statement's
/// ``StatementClassification/objects``, which depend on the text's identifiers only, so the
/// same cached entry stays right when the snapshot is replaced.
extension CatalogSnapshot {
    /// `result` with every otherwise-allowed statement refused that names a restricted relation,
    /// or a function, operator or type name that may resolve to a user-defined object.
    public func applied(to result: ClassificationResult) -> ClassificationResult {
        guard !isEmpty, result.syntaxError == nil else { return result }
        var changed = false
        let global = globalRefusal
        let statements = result.statements.map { statement -> StatementClassification in
            guard statement.refusal == nil else { return statement }
            if let global {
                changed = true
                return statement.refused(global)
            }
            // LOCK runs no query (and pg_dump locks every table it dumps).
            guard statement.commandTag != "LOCK TABLE" else { return statement }
            for object in statement.objects {
                if let relation = restriction(for: object) {
                    changed = true
                    return statement.refused(Self.refusal(relation))
                }
                if let refusal = userObjectRefusal(for: object) {
                    changed = true
                    return statement.refused(refusal)
                }
            }
            for lookup in statement.lookups {
                if let refusal = userObjectRefusal(for: lookup) {
                    changed = true
                    return statement.refused(refusal)
                }
            }
            return statement
        }
        return changed ? ClassificationResult(statements: statements, syntaxError: nil) : result
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
