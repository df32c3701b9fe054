/// Objects a statement names, for the audit stream and for catalog checks (``CatalogSnapshot``).
///
/// pgAudit's OBJECT audit logging records `object_type` and `object_name` per relation a
/// statement touches (pgAudit README, "Object Audit Logging"); Portcullis has only the raw
/// parse tree, so it reports names as written — folded as PostgreSQL's scanner folds them
/// (unquoted identifiers lower-cased, src/backend/parser/scansup.c) and qualified only when the
/// statement qualified them — not resolved OIDs. Names come from identifiers, never from
/// literals, so they are the same for every text sharing a normalized cache key.
public struct ObjectReference: Sendable, Hashable, CustomStringConvertible {
    public enum Kind: String, Sendable, Hashable {
        /// A RangeVar: table, view, materialized view, foreign table, sequence — or a
        /// WITH query's name, which the raw parse tree cannot tell apart.
        case relation = "RELATION"
        case function = "FUNCTION"
    }

    public enum Access: String, Sendable, Hashable {
        case read = "READ"
        /// The statement would change the relation: the target of INSERT, UPDATE, DELETE,
        /// MERGE, TRUNCATE, COPY FROM, SELECT INTO / CREATE TABLE AS, or a relation a utility
        /// statement (ALTER TABLE, GRANT, VACUUM, ...) names outside any query.
        case write = "WRITE"
        /// A function call.
        case call = "CALL"
    }

    public let kind: Kind
    /// The schema as written, or nil when unqualified (resolved through search_path).
    public let schema: String?
    public let name: String
    public let access: Access

    public init(kind: Kind, schema: String?, name: String, access: Access) {
        self.kind = kind
        self.schema = schema
        self.name = name
        self.access = access
    }

    /// `schema.name` or `name`, unquoted.
    public var qualifiedName: String { schema.map { "\($0).\(name)" } ?? name }

    public var description: String { "\(access.rawValue) \(kind.rawValue) \(qualifiedName)" }
}

/// A name in a statement that PostgreSQL resolves through the catalog and the session's
/// search_path, where user code could be chosen (``CatalogSnapshot``): an operator symbol
/// (written or implied, e.g. `=` for `IN`, `CASE x WHEN`, `JOIN ... USING`), a type name, or a
/// field name that PostgreSQL may read as a function call in attribute notation (`t.f` is
/// `f(t)` when `t` has no column `f`; docs 38.5.11 / src/backend/parser/parse_func.c
/// ParseFuncOrColumn). Function calls proper are ``ObjectReference``s of kind `.function`.
public struct CatalogLookup: Sendable, Hashable, CustomStringConvertible {
    public enum Kind: String, Sendable, Hashable {
        case `operator` = "OPERATOR"
        case type = "TYPE"
        /// `(x).f`: f(x) for an x of any type.
        case attributeFunction = "ATTRIBUTE"
        /// `t.f` (a column reference's last field) where t is not named by a function in FROM:
        /// f(t) with t's whole row, a composite type or `record` (src/backend/parser/
        /// parse_expr.c transformColumnRef, transformWholeRowRef; a function in FROM returning
        /// a scalar gives a whole row of that scalar type, so those stay ``attributeFunction``).
        case rowAttribute = "ROW ATTRIBUTE"
    }

    public let kind: Kind
    /// The schema as written, or nil when resolved through search_path.
    public let schema: String?
    public let name: String

    public init(kind: Kind, schema: String?, name: String) {
        self.kind = kind
        self.schema = schema
        self.name = name
    }

    public var description: String { "\(kind.rawValue) \(schema.map { "\($0)." } ?? "")\(name)" }
}
