/// What name resolution could pick outside the built-in catalog ("functions are judged by
/// what PostgreSQL will call, not by their name"; docs/READONLY.md, "Overloads, operators,
/// casts, domains, aggregates").
///
/// PostgreSQL resolves an unqualified function, aggregate or operator name by collecting every
/// candidate of that name in every schema of the effective search path, then choosing by
/// argument types (src/backend/catalog/namespace.c FuncnameGetCandidates /
/// OpernameGetCandidates; src/backend/parser/parse_func.c func_get_detail,
/// parse_oper.c oper_select_candidate). A candidate in a later schema is hidden only by one with
/// the *same* argument types in an earlier schema, so `public.lower(integer)` is chosen for
/// `lower(1)` however the path is ordered, and the session's path (role, database and server
/// defaults included) is not known here. Hence the conservative rule: a name is refused when
/// any schema holds a user-defined object of that name.
extension CatalogSnapshot {
    /// One row of ``objectsQuery``.
    public struct ObjectRow: Sendable, Equatable {
        public enum Kind: String, Sendable {
            /// A function, procedure, aggregate or window function outside the built-in catalog.
            case function
            /// An operator outside the built-in catalog.
            case `operator`
            /// A type whose casts or domain constraints run code that is not read-safe, or
            /// that contains one (arrays, domains, ranges, composite and row types).
            case type
            /// A relation with a column of such a type.
            case relation
            /// A cast with a function that is not read-safe between two built-in types.
            case cast
            /// A system relation with an anyarray column, while a user cast to json or jsonb
            /// calls code that is not read-safe (``CatalogSnapshot/runtimeJSONRefusal(for:)``).
            case anyarray
        }

        public var kind: Kind
        public var oid: UInt32
        public var schema: String
        public var name: String
        /// The object's signature (functions, operators) or why it is flagged (types,
        /// relations, casts).
        public var detail: String
        /// `pg_class.relkind` for relations.
        public var relkind: String?
        /// For functions and types: whether `t.name` can reach it with `t`'s whole row as the
        /// argument — a function callable with one argument of a row type, a domain over a row
        /// type (``UserObjects/rowFunctions``). True when not known (fail closed).
        public var takesRow: Bool

        public init(kind: Kind, oid: UInt32, schema: String, name: String, detail: String, relkind: String? = nil,
                    takesRow: Bool = true) {
            self.kind = kind
            self.oid = oid
            self.schema = schema
            self.name = name
            self.detail = detail
            self.relkind = relkind
            self.takesRow = takesRow
        }
    }

    /// One object that resolution may reach: where it lives and what to tell the client.
    struct UserObject: Sendable, Hashable {
        let schema: String
        /// Signature (`public.lower(integer)`) or reason.
        let detail: String
    }

    /// The objects of one snapshot indexed by name (as the parser folds it) for matching.
    struct UserObjects: Sendable, Equatable {
        var functions: [String: [UserObject]] = [:]
        var operators: [String: [UserObject]] = [:]
        var types: [String: [UserObject]] = [:]
        /// The functions and types `t.name` can reach when `t` names a relation, a subquery, a
        /// join or a CTE, whose whole row is a composite type or `record`
        /// (``CatalogLookup/Kind/rowAttribute``): functions callable with one argument of a
        /// row type (a composite type or a domain over one, `record`, `"any"`, `anyelement`,
        /// `anynonarray`, `anycompatible`, `anycompatiblenonarray`; src/backend/parser/
        /// parse_coerce.c can_coerce_type), and domains over a row type (the only coercion
        /// func_get_detail accepts from a row: binary-coercible; I/O to a string type is
        /// excluded there). With a user cast from a row type, every function and type.
        var rowFunctions: [String: [UserObject]] = [:]
        var rowTypes: [String: [UserObject]] = [:]
        /// Flagged types by OID, for the parameter types of an extended-protocol Parse.
        var typeOIDs: [UInt32: UserObject] = [:]
        /// Reasons every statement is refused (a user-defined cast between built-in types can
        /// be applied implicitly to any expression of those types).
        var casts: [String] = []
        /// System relations (in pg_catalog) with an anyarray column, by name, and why they
        /// matter: set only while a user cast to json or jsonb calls code.
        var anyarrayRelations: [String: String] = [:]

        init(rows: [ObjectRow]) {
            for row in rows {
                let object = UserObject(schema: row.schema, detail: row.detail)
                switch row.kind {
                case .function:
                    functions[row.name, default: []].append(object)
                    if row.takesRow { rowFunctions[row.name, default: []].append(object) }
                case .operator: operators[row.name, default: []].append(object)
                case .type:
                    types[row.name, default: []].append(object)
                    if row.takesRow { rowTypes[row.name, default: []].append(object) }
                    typeOIDs[row.oid] = object
                case .cast: casts.append(row.detail)
                case .anyarray: if anyarrayRelations[row.name] == nil { anyarrayRelations[row.name] = row.detail }
                case .relation: break
                }
            }
        }

        var isEmpty: Bool {
            functions.isEmpty && operators.isEmpty && types.isEmpty && casts.isEmpty && anyarrayRelations.isEmpty
        }

        /// The object `name` may resolve to: unqualified, one in any schema (the search path is
        /// not known; pg_temp's functions and operators are never found unqualified, but the
        /// read-only session cannot create any, so counting them costs nothing); qualified, one in
        /// that schema.
        static func match(_ index: [String: [UserObject]], schema: String?, name: String) -> UserObject? {
            guard let candidates = index[name] else { return nil }
            guard let schema else { return candidates.first }
            if schema == "pg_temp" { return candidates.first { $0.schema.hasPrefix("pg_temp_") } }
            return candidates.first { $0.schema == schema }
        }
    }

    /// The built-in functions that build json or jsonb from values of any type, looking up a
    /// cast to json for each value's own type at run time (src/backend/utils/adt/json.c
    /// json_categorize_type, jsonb.c jsonb_categorize_type; PostgreSQL 16's strict and unique
    /// aggregates too).
    static let jsonBuilders: Set<String> = [
        "to_json", "to_jsonb", "array_to_json", "row_to_json", "json_agg", "jsonb_agg", "json_agg_strict", "jsonb_agg_strict",
        "json_object_agg", "jsonb_object_agg", "json_object_agg_strict", "jsonb_object_agg_strict",
        "json_object_agg_unique", "jsonb_object_agg_unique", "json_object_agg_unique_strict", "jsonb_object_agg_unique_strict",
        "json_build_array", "json_build_object", "jsonb_build_array", "jsonb_build_object",
    ]

    /// A statement that reads a system relation with an anyarray column (pg_stats'
    /// `most_common_vals`, pg_attribute's `attmissingval`: values of any type, user types too)
    /// and calls a json builder, while a user cast to json or jsonb calls code: the builder would
    /// find the cast by the value's type, which the statement never names (found in review:
    /// `SELECT array_to_json(most_common_vals) FROM pg_stats` ran a cast that wrote). Reading
    /// those relations otherwise (psql's `\d`, pg_dump) and json over other relations stay
    /// allowed; views over them are flagged relations.
    func runtimeJSONRefusal(for statement: StatementClassification) -> Refusal? {
        guard !userObjects.anyarrayRelations.isEmpty else { return nil }
        // Called, or by attribute notation: `(most_common_vals).array_to_json` (found in review).
        let called = statement.objects.first {
            $0.kind == .function && ($0.schema == nil || $0.schema == "pg_catalog") && Self.jsonBuilders.contains($0.name)
        }
        let selected = statement.lookups.first {
            ($0.kind == .attributeFunction || $0.kind == .rowAttribute) && Self.jsonBuilders.contains($0.name)
        }
        guard let builder = called?.qualifiedName ?? selected?.name else { return nil }
        for object in statement.objects where object.kind == .relation && (object.schema == nil || object.schema == "pg_catalog") {
            guard let reason = userObjects.anyarrayRelations[object.name] else { continue }
            return Refusal(sqlState: "25006",
                           message: "calling \(builder)() in a statement that reads pg_catalog.\(object.name) is not allowed for a read-only identity: \(reason)",
                           isPostgreSQLText: false)
        }
        return nil
    }

    /// The refusal for a statement that `lookup`/`object` makes resolve to a user object, or nil.
    func userObjectRefusal(for object: ObjectReference) -> Refusal? {
        guard object.kind == .function else { return nil }
        if let found = UserObjects.match(userObjects.functions, schema: object.schema, name: object.name) {
            return Self.resolutionRefusal("function \(object.qualifiedName)()", "user-defined function \(found.detail)")
        }
        // `t(x)` with one argument is a coercion to type t when no function matches
        // (func_get_detail, FUNCDETAIL_COERCION), so a flagged type's name counts too.
        if let found = UserObjects.match(userObjects.types, schema: object.schema, name: object.name) {
            return Self.resolutionRefusal("function \(object.qualifiedName)()",
                                          "a coercion to type \(found.schema).\(object.name): \(found.detail)")
        }
        return nil
    }

    func userObjectRefusal(for lookup: CatalogLookup) -> Refusal? {
        switch lookup.kind {
        case .operator:
            guard let found = UserObjects.match(userObjects.operators, schema: lookup.schema, name: lookup.name) else { return nil }
            let written = lookup.schema.map { "OPERATOR(\($0).\(lookup.name))" } ?? lookup.name
            return Self.resolutionRefusal("operator \(written)", "user-defined operator \(found.detail)")
        case .attributeFunction, .rowAttribute:
            // A row's field (`t.col` when t has a column col) is never a call: only a row
            // argument reaches the function or type then (false positives found in review: a
            // function name(integer) refused asyncpg's and psql's catalog queries).
            let ofRow = lookup.kind == .rowAttribute
            if let found = UserObjects.match(ofRow ? userObjects.rowFunctions : userObjects.functions, schema: nil, name: lookup.name) {
                return Self.resolutionRefusal("field selection .\(lookup.name)",
                                              "user-defined function \(found.detail) (attribute notation)")
            }
            // `(x).t`, like `t(x)`, is a coercion to type t when no field or function matches
            // (ParseFuncOrColumn, func_get_detail FUNCDETAIL_COERCION): a domain's CHECK runs
            // (found in review: `SELECT (1).evil_d` and `p.evil_row` wrote).
            guard let found = UserObjects.match(ofRow ? userObjects.rowTypes : userObjects.types, schema: nil, name: lookup.name) else {
                return nil
            }
            return Self.resolutionRefusal("field selection .\(lookup.name)",
                                          "a coercion to type \(found.schema).\(lookup.name): \(found.detail) (attribute notation)")
        case .type:
            guard let found = UserObjects.match(userObjects.types, schema: lookup.schema, name: lookup.name) else { return nil }
            let written = lookup.schema.map { "\($0).\(lookup.name)" } ?? lookup.name
            return Refusal(sqlState: "25006",
                           message: "type \"\(written)\" is not allowed for a read-only identity: type \(found.schema).\(lookup.name): \(found.detail)",
                           isPostgreSQLText: false)
        }
    }

    /// The refusal for an extended-protocol Parse that declares a parameter of a flagged type
    /// (its values are coerced through the type's casts and domain constraints), or nil.
    public func refusal(forParameterTypes types: [Int32]) -> Refusal? {
        for type in types where type != 0 {
            guard let found = userObjects.typeOIDs[UInt32(bitPattern: type)] else { continue }
            return Refusal(sqlState: "25006",
                           message: "a parameter of type OID \(UInt32(bitPattern: type)) is not allowed for a read-only identity: \(found.detail)",
                           isPostgreSQLText: false)
        }
        return nil
    }

    /// Set when no statement may run: the catalog has not been read (or not recently enough),
    /// or a cast between built-in types calls code.
    var globalRefusal: Refusal? {
        if let unloaded {
            let (again, why): (String, String)
            switch unloaded {
            case .pending: (again, why) = ("", "it has not been read yet")
            case .failed: (again, why) = ("", "reading it failed (the proxy's log says why)")
            case .stale:
                (again, why) = (" again", "the last successful read is older than catalog_max_age"
                                    + " and reading it again has not succeeded (the proxy's log says why)")
            }
            return Refusal(sqlState: "25006",
                           message: "statements are not allowed for a read-only identity until Portcullis has read this database's catalog\(again): \(why)",
                           isPostgreSQLText: false)
        }
        guard let reason = userObjects.casts.first else { return nil }
        return Refusal(sqlState: "25006",
                       message: "statements are not allowed for a read-only identity in this database: \(reason), and PostgreSQL may apply it to any expression of that type",
                       isPostgreSQLText: false)
    }

    static func resolutionRefusal(_ what: String, _ target: String) -> Refusal {
        Refusal(sqlState: "25006",
                message: "\(what) is not allowed for a read-only identity: PostgreSQL may resolve it to \(target)",
                isPostgreSQLText: false)
    }
}
