/// Relations of one upstream database that a read-only identity must not touch, because
/// reading them runs code with effects ("writes hide behind names"):
/// - views and materialized views whose definition calls — directly, through other views,
///   through operators or domain CHECK constraints — a function not on
///   ``FunctionPolicy/readSafeFunctions`` (a view's query runs with the view owner's rights,
///   docs 41.2 Views and the Rule System; set_config, nextval and setval count as unsafe here);
/// - foreign tables, and relations that read one (a read runs a query on another server,
///   docs 5.12 Foreign Data);
/// - tables whose row-level security policies call such a function (policy expressions run
///   for every row read, docs 5.8 Row Security Policies), and relations that read one.
/// Partitions and inheritance children count as read with their parent.
/// It also knows (``UserObjects``, from ``objectsQuery``) every function, aggregate, operator
/// and code-running type outside the built-in catalog that PostgreSQL's name resolution could
/// pick for a statement ("functions are judged by what PostgreSQL will call"), and relations
/// with a column of such a type.
///
/// Built by ``init(rows:)`` from the rows of ``query``; a pure value, so the proxy can swap a
/// fresh one in whenever it reloads the catalog. One snapshot describes one database.
public struct CatalogSnapshot: Sendable, Equatable {
    /// One row of ``query``, columns in order.
    public struct Row: Sendable, Equatable {
        public var schema: String
        public var name: String
        /// `pg_class.relkind`: "v", "m", "f", "r" or "p".
        public var relkind: String
        /// "function" or "foreign table".
        public var cause: String
        /// `schema.function(argument types)` or `schema.foreign_table`.
        public var detail: String
        /// The relation whose definition or policy holds the cause, when it is not this one.
        public var viaSchema: String?
        public var viaName: String?
        public var viaRelkind: String?

        public init(schema: String, name: String, relkind: String, cause: String, detail: String,
                    viaSchema: String? = nil, viaName: String? = nil, viaRelkind: String? = nil) {
            self.schema = schema
            self.name = name
            self.relkind = relkind
            self.cause = cause
            self.detail = detail
            self.viaSchema = viaSchema
            self.viaName = viaName
            self.viaRelkind = viaRelkind
        }
    }

    /// A relation the snapshot flags, with why.
    public struct RestrictedRelation: Sendable, Hashable {
        public let schema: String
        public let name: String
        /// "view", "materialized view", "foreign table", "table", "partitioned table".
        public let kindName: String
        /// E.g. `it calls function public.f()`.
        public let reason: String
        /// Flagged only for a column of a flagged type (``UserObjects``): its values reach
        /// casts and domain checks only through expressions, so copying its stored rows out
        /// (`COPY t TO STDOUT`, as pg_dump does) is not refused.
        public var byColumnType = false

        public var qualifiedName: String { "\(schema).\(name)" }
    }

    /// Flagged relations by name, for matching unqualified references in any schema.
    private let byName: [String: [RestrictedRelation]]
    /// Functions, operators and types outside the built-in catalog that name resolution could
    /// pick (``UserObjects``, built from the rows of ``objectsQuery``).
    let userObjects: UserObjects
    /// The database's encoding when it is not UTF8 (nil for UTF8): then identifiers with
    /// non-ASCII characters are refused (``nonASCIINameRefusal(for:)``).
    let nonUTF8ServerEncoding: String?
    /// Not read yet, or read too long ago: no load of this database's catalog has succeeded, or
    /// the last one is older than `catalog_max_age`. Such a snapshot refuses every statement
    /// (fail closed): what the catalog holds is unknown.
    public let unloaded: Unloaded?

    public enum Unloaded: Sendable, Equatable {
        /// No load has finished yet (start-up, or a database first reached through `*`).
        case pending
        /// Every load so far failed; the text is the last error.
        case failed(String)
        /// A load succeeded once, but every refresh for longer than `catalog_max_age` failed
        /// (or has not finished): whoever can make refreshes fail (a database owner: CONNECTION
        /// LIMIT 0, default settings that make the queries wait) could plant code the old
        /// snapshot does not know.
        case stale
    }

    public static let empty = CatalogSnapshot(rows: [])

    /// The stand-in while a database's catalog has not been read (``unloaded``).
    public static func unloaded(_ state: Unloaded) -> CatalogSnapshot {
        CatalogSnapshot(rows: [], objects: [], serverEncoding: nil, unloaded: state)
    }

    /// - Parameter objects: the rows of ``objectsQuery`` (user functions, operators, flagged
    ///   types, relations whose columns have flagged types, casts between built-in types).
    /// - Parameter serverEncoding: the database's `server_encoding`.
    public init(rows: [Row], objects: [ObjectRow] = [], serverEncoding: String? = nil) {
        self.init(rows: rows, objects: objects, serverEncoding: serverEncoding, unloaded: nil)
    }

    private init(rows: [Row], objects: [ObjectRow], serverEncoding: String?, unloaded: Unloaded?) {
        self.unloaded = unloaded
        var byName: [String: [RestrictedRelation]] = [:]
        for row in rows {
            let relation = RestrictedRelation(schema: row.schema, name: row.name,
                                              kindName: Self.kindName(row.relkind), reason: Self.reason(row))
            byName[row.name, default: []].append(relation)
        }
        for row in objects where row.kind == .relation {
            // A relation flagged for its own definition keeps that (first) reason.
            guard byName[row.name]?.contains(where: { $0.schema == row.schema }) != true else { continue }
            byName[row.name, default: []].append(RestrictedRelation(schema: row.schema, name: row.name,
                                                                    kindName: Self.kindName(row.relkind ?? "r"),
                                                                    reason: row.detail, byColumnType: true))
        }
        self.byName = byName
        userObjects = UserObjects(rows: objects)
        nonUTF8ServerEncoding = serverEncoding.flatMap { ClientEncodingPolicy.isReadOnlyAllowed($0) ? nil : $0 }
    }

    var isEmpty: Bool { byName.isEmpty && userObjects.isEmpty && nonUTF8ServerEncoding == nil && unloaded == nil }

    public var restrictedRelations: [RestrictedRelation] {
        byName.values.flatMap { $0 }.sorted { ($0.schema, $0.name) < ($1.schema, $1.name) }
    }

    public static func == (lhs: CatalogSnapshot, rhs: CatalogSnapshot) -> Bool {
        Set(lhs.restrictedRelations) == Set(rhs.restrictedRelations) && lhs.userObjects == rhs.userObjects
            && lhs.nonUTF8ServerEncoding == rhs.nonUTF8ServerEncoding && lhs.unloaded == rhs.unloaded
    }

    /// The flagged relation `object` may denote, or nil. Conservative: the session's
    /// search_path is unknown, so an unqualified name matches the relation in every schema;
    /// a qualified name matches its schema only (`pg_temp` matches every temporary schema).
    /// Names are compared exactly, as the parser already folded them (unquoted identifiers
    /// lower-cased, quoted ones kept; src/backend/parser/scansup.c).
    public func restriction(for object: ObjectReference) -> RestrictedRelation? {
        guard object.kind == .relation, let candidates = byName[object.name] else { return nil }
        guard let schema = object.schema else { return candidates.first }
        if schema == "pg_temp" { return candidates.first { $0.schema.hasPrefix("pg_temp_") } }
        return candidates.first { $0.schema == schema }
    }

    /// The refusal for reading `relation`: policy style, SQLSTATE 25006.
    public static func refusal(_ relation: RestrictedRelation) -> Refusal {
        Refusal(sqlState: "25006",
                message: "reading \(relation.kindName) \"\(relation.qualifiedName)\" is not allowed for a read-only identity: \(relation.reason)",
                isPostgreSQLText: false)
    }

    static func kindName(_ relkind: String) -> String {
        switch relkind {
        case "v": "view"
        case "m": "materialized view"
        case "f": "foreign table"
        case "p": "partitioned table"
        default: "table"
        }
    }

    static func reason(_ row: Row) -> String {
        if row.cause == "shadow" {
            return "it has the name of the system relation \(row.detail), which an unqualified name is taken to mean"
        }
        let what = row.cause == "function" ? "calls function \(row.detail)" : "reads foreign table \(row.detail)"
        guard let viaName = row.viaName else {
            if row.cause == "function" && (row.relkind == "r" || row.relkind == "p") {
                return "its row-level security policy, an index, extended statistics or a CHECK constraint on it calls function \(row.detail)"
            }
            if row.cause == "foreign table" && row.relkind == "f" {
                return "it is a foreign table; reading it runs a query on another server (its server is not listed in readable_foreign_servers)"
            }
            return "it \(what)"
        }
        let via = "\(row.viaSchema ?? "").\(viaName)"
        switch row.viaRelkind {
        case "r", "p":
            if row.cause == "function" {
                return "it reads \(kindName(row.viaRelkind ?? "r")) \(via), whose row-level security policy, an index, extended statistics or a CHECK constraint calls function \(row.detail)"
            }
            return "it reads \(kindName(row.viaRelkind ?? "r")) \(via), which \(what)"
        default:
            return "it reads \(kindName(row.viaRelkind ?? "v")) \(via), which \(what)"
        }
    }
}
