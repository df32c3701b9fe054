import CPgQuery

/// SET / RESET / transaction modes, and tag names for DDL.
extension StatementClassifier {
    /// SET, RESET, SET TRANSACTION, SET SESSION CHARACTERISTICS (docs: SQL Commands, SET).
    func decideSet(_ set: UnsafeMutablePointer<PgQuery__VariableSetStmt>) -> Decision {
        let stmt = set.pointee
        let name = stmt.name.map { String(cString: $0) } ?? ""
        switch stmt.kind {
        case PG_QUERY__VARIABLE_SET_KIND__VAR_RESET_ALL:
            return Decision(tag: "RESET", auditClass: .miscSet, refusal: .policy("RESET ALL"))
        case PG_QUERY__VARIABLE_SET_KIND__VAR_SET_MULTI:
            // SET TRANSACTION / SET SESSION CHARACTERISTICS AS TRANSACTION: a list of modes.
            var decision = Decision(tag: "SET", auditClass: .miscSet, refusal: nil)
            if Self.requestsReadWrite(stmt.args, count: stmt.n_args, decision: &decision) {
                decision.refuse(.policy("SET \(name) READ WRITE"))
            }
            return decision
        case PG_QUERY__VARIABLE_SET_KIND__VAR_RESET:
            return Decision(tag: "RESET", auditClass: .miscSet,
                            refusal: SettingPolicy.isProtected(name) ? .policy("RESET \(name)") : nil)
        default:
            var decision = Decision(tag: "SET", auditClass: .miscSet, refusal: nil)
            if SettingPolicy.isProtected(name) {
                // `SET default_transaction_read_only = on` changes nothing; the value is a
                // literal normalization erases.
                decision.dependsOnLiterals = true
                if !(stmt.kind == PG_QUERY__VARIABLE_SET_KIND__VAR_SET_VALUE && Self.setsTrue(stmt, name: name)) {
                    decision.refuse(.policy("SET \(name)"))
                }
            }
            if name.lowercased() == "client_encoding" {
                // SET client_encoding / SET NAMES: the encoding is a literal normalization erases.
                decision.dependsOnLiterals = true
                for index in 0..<stmt.n_args {
                    if case .string(let encoding) = NodeValue.constant(stmt.args[index]),
                       !ClientEncodingPolicy.isReadOnlyAllowed(encoding) {
                        decision.refuse(.policy("client encoding \"\(encoding)\""))
                    }
                }
            }
            if name.lowercased() == "search_path" {
                // The values are literals that normalization erases.
                decision.dependsOnLiterals = true
                var schemas: [String] = []
                var unread = false
                for index in 0..<stmt.n_args {
                    // A number is a schema name too: `SET search_path = 1, pg_catalog` puts
                    // schema "1" first (guc.c ExtractSetVariableArgs prints it).
                    switch NodeValue.plainConstant(stmt.args[index]) {
                    case .string(let schema)?: schemas.append(schema)
                    case .integer(let number)?: schemas.append(String(number))
                    default: unread = true
                    }
                }
                if unread {
                    decision.refuse(.policy("SET search_path with a value that is not a plain name"))
                } else if SettingPolicy.searchPathDemotesCatalog(schemas) {
                    decision.refuse(.policy("SET search_path with pg_catalog after another schema"))
                }
            }
            return decision
        }
    }

    /// True when SET gives the read-only flag `name` one value that PostgreSQL reads as true.
    /// The value is what ExtractSetVariableArgs (src/backend/utils/misc/guc.c) makes of the one
    /// argument — a bare string or keyword (`on`, `true`, `'yes'`) or the integer 1 — and
    /// parse_bool reads; anything else (a list, a cast, DEFAULT, FROM CURRENT) is refused.
    static func setsTrue(_ stmt: PgQuery__VariableSetStmt, name: String) -> Bool {
        guard stmt.n_args == 1, let arg = stmt.args[0], arg.pointee.node_case == PG_QUERY__NODE__NODE_A_CONST else {
            return false
        }
        switch NodeValue.constant(arg) {
        case .string(let text): return SettingPolicy.isSafeValue(text, forProtected: name)
        case .integer(let number): return number == 1 && SettingPolicy.isSafeValue("1", forProtected: name)
        default: return false
        }
    }

    /// BEGIN, START TRANSACTION, COMMIT, SAVEPOINT, ... (docs: SQL Commands, BEGIN).
    func decideTransaction(_ transaction: UnsafeMutablePointer<PgQuery__TransactionStmt>) -> Decision {
        let stmt = transaction.pointee
        var decision: Decision
        switch stmt.kind {
        case PG_QUERY__TRANSACTION_STMT_KIND__TRANS_STMT_BEGIN:
            decision = Decision(tag: "BEGIN", auditClass: .misc, refusal: nil)
        case PG_QUERY__TRANSACTION_STMT_KIND__TRANS_STMT_START:
            decision = Decision(tag: "START TRANSACTION", auditClass: .misc, refusal: nil)
        case PG_QUERY__TRANSACTION_STMT_KIND__TRANS_STMT_COMMIT:
            decision = Decision(tag: "COMMIT", auditClass: .misc, refusal: nil)
        case PG_QUERY__TRANSACTION_STMT_KIND__TRANS_STMT_ROLLBACK,
             PG_QUERY__TRANSACTION_STMT_KIND__TRANS_STMT_ROLLBACK_TO:
            decision = Decision(tag: "ROLLBACK", auditClass: .misc, refusal: nil)
        case PG_QUERY__TRANSACTION_STMT_KIND__TRANS_STMT_SAVEPOINT:
            decision = Decision(tag: "SAVEPOINT", auditClass: .misc, refusal: nil)
        case PG_QUERY__TRANSACTION_STMT_KIND__TRANS_STMT_RELEASE:
            decision = Decision(tag: "RELEASE", auditClass: .misc, refusal: nil)
        case PG_QUERY__TRANSACTION_STMT_KIND__TRANS_STMT_PREPARE:
            return Decision(tag: "PREPARE TRANSACTION", auditClass: .misc, refusal: .policy("PREPARE TRANSACTION"))
        case PG_QUERY__TRANSACTION_STMT_KIND__TRANS_STMT_COMMIT_PREPARED:
            return Decision(tag: "COMMIT PREPARED", auditClass: .misc, refusal: .policy("COMMIT PREPARED"))
        case PG_QUERY__TRANSACTION_STMT_KIND__TRANS_STMT_ROLLBACK_PREPARED:
            return Decision(tag: "ROLLBACK PREPARED", auditClass: .misc, refusal: .policy("ROLLBACK PREPARED"))
        default:
            return Decision(tag: "BEGIN", auditClass: .misc, refusal: .policy("this transaction command"))
        }
        if Self.requestsReadWrite(stmt.options, count: stmt.n_options, decision: &decision) {
            decision.refuse(.policy("\(decision.tag) READ WRITE"))
        }
        return decision
    }

    /// True when a transaction-mode list contains READ WRITE (transaction_read_only = false).
    static func requestsReadWrite(_ list: UnsafeMutablePointer<UnsafeMutablePointer<PgQuery__Node>?>?,
                                  count: Int, decision: inout Decision) -> Bool {
        guard let list else { return false }
        for index in 0..<count {
            guard let node = list[index], node.pointee.node_case == PG_QUERY__NODE__NODE_DEF_ELEM,
                  let defElem = node.pointee.def_elem,
                  String(cString: defElem.pointee.defname) == "transaction_read_only" else { continue }
            decision.dependsOnLiterals = true
            // Unknown value: fail closed.
            if NodeValue.defElemBoolean(defElem.pointee.arg) != true { return true }
        }
        return false
    }

    /// "TABLE", "MATERIALIZED VIEW", ... from the ObjectType enum (parsenodes.h), as
    /// PostgreSQL spells it in command tags.
    static func objectName(_ type: PgQuery__ObjectType) -> String {
        var name = String(cString: cpq_object_type_name(Int32(bitPattern: type.rawValue)))
        if name.hasPrefix("OBJECT_") { name.removeFirst("OBJECT_".count) }
        if let spelled = objectNameSpelling[name] { return spelled }
        return name.replacingUnderscores()
    }

    private static let objectNameSpelling: [String: String] = [
        "MATVIEW": "MATERIALIZED VIEW", "FDW": "FOREIGN DATA WRAPPER", "FOREIGN_SERVER": "SERVER",
        "TSCONFIGURATION": "TEXT SEARCH CONFIGURATION", "TSDICTIONARY": "TEXT SEARCH DICTIONARY",
        "TSPARSER": "TEXT SEARCH PARSER", "TSTEMPLATE": "TEXT SEARCH TEMPLATE",
        "OPCLASS": "OPERATOR CLASS", "OPFAMILY": "OPERATOR FAMILY", "STATISTIC_EXT": "STATISTICS",
        "LARGEOBJECT": "LARGE OBJECT", "TABCONSTRAINT": "TABLE", "DEFACL": "DEFAULT PRIVILEGES",
        "USER_MAPPING": "USER MAPPING", "ACCESS_METHOD": "ACCESS METHOD", "ATTRIBUTE": "TYPE",
    ]

    /// Tags for the remaining utility statements (cmdtaglist.h); derived from the parse node's
    /// name when not listed ("CreateStatsStmt" -> "CREATE STATS").
    static func utilityTag(_ nodeCase: PgQuery__Node__NodeCase) -> String {
        if let tag = utilityTags[nodeCase.rawValue] { return tag }
        guard let field = protobuf_c_message_descriptor_get_field(cpq_node_descriptor(), nodeCase.rawValue),
              let fieldName = field.pointee.name else { return "UNKNOWN" }
        // Field names are snake_case ("create_stats_stmt").
        var words = String(cString: fieldName).split(separator: "_").map { $0.uppercased() }
        if words.last == "STMT" { words.removeLast() }
        return words.joined(separator: " ")
    }

    private static let utilityTags: [UInt32: String] = [
        PG_QUERY__NODE__NODE_CREATE_STMT.rawValue: "CREATE TABLE",
        PG_QUERY__NODE__NODE_INDEX_STMT.rawValue: "CREATE INDEX",
        PG_QUERY__NODE__NODE_VIEW_STMT.rawValue: "CREATE VIEW",
        PG_QUERY__NODE__NODE_CREATE_SEQ_STMT.rawValue: "CREATE SEQUENCE",
        PG_QUERY__NODE__NODE_ALTER_SEQ_STMT.rawValue: "ALTER SEQUENCE",
        PG_QUERY__NODE__NODE_CREATE_SCHEMA_STMT.rawValue: "CREATE SCHEMA",
        PG_QUERY__NODE__NODE_CREATEDB_STMT.rawValue: "CREATE DATABASE",
        PG_QUERY__NODE__NODE_DROPDB_STMT.rawValue: "DROP DATABASE",
        PG_QUERY__NODE__NODE_ALTER_DATABASE_STMT.rawValue: "ALTER DATABASE",
        PG_QUERY__NODE__NODE_ALTER_DATABASE_SET_STMT.rawValue: "ALTER DATABASE",
        PG_QUERY__NODE__NODE_CREATE_EXTENSION_STMT.rawValue: "CREATE EXTENSION",
        PG_QUERY__NODE__NODE_ALTER_EXTENSION_STMT.rawValue: "ALTER EXTENSION",
        PG_QUERY__NODE__NODE_CREATE_TRIG_STMT.rawValue: "CREATE TRIGGER",
        PG_QUERY__NODE__NODE_RULE_STMT.rawValue: "CREATE RULE",
        PG_QUERY__NODE__NODE_CREATE_DOMAIN_STMT.rawValue: "CREATE DOMAIN",
        PG_QUERY__NODE__NODE_COMPOSITE_TYPE_STMT.rawValue: "CREATE TYPE",
        PG_QUERY__NODE__NODE_CREATE_ENUM_STMT.rawValue: "CREATE TYPE",
        PG_QUERY__NODE__NODE_CREATE_RANGE_STMT.rawValue: "CREATE TYPE",
        PG_QUERY__NODE__NODE_ALTER_ENUM_STMT.rawValue: "ALTER TYPE",
        PG_QUERY__NODE__NODE_CREATE_POLICY_STMT.rawValue: "CREATE POLICY",
        PG_QUERY__NODE__NODE_ALTER_POLICY_STMT.rawValue: "ALTER POLICY",
        PG_QUERY__NODE__NODE_CREATE_FOREIGN_TABLE_STMT.rawValue: "CREATE FOREIGN TABLE",
        PG_QUERY__NODE__NODE_CREATE_EVENT_TRIG_STMT.rawValue: "CREATE EVENT TRIGGER",
        PG_QUERY__NODE__NODE_CREATE_TABLE_SPACE_STMT.rawValue: "CREATE TABLESPACE",
        PG_QUERY__NODE__NODE_DROP_TABLE_SPACE_STMT.rawValue: "DROP TABLESPACE",
        PG_QUERY__NODE__NODE_ALTER_FUNCTION_STMT.rawValue: "ALTER FUNCTION",
        PG_QUERY__NODE__NODE_CREATE_STATS_STMT.rawValue: "CREATE STATISTICS",
        PG_QUERY__NODE__NODE_ALTER_DEFAULT_PRIVILEGES_STMT.rawValue: "ALTER DEFAULT PRIVILEGES",
        PG_QUERY__NODE__NODE_DROP_OWNED_STMT.rawValue: "DROP OWNED",
        PG_QUERY__NODE__NODE_REASSIGN_OWNED_STMT.rawValue: "REASSIGN OWNED",
        PG_QUERY__NODE__NODE_CREATE_PUBLICATION_STMT.rawValue: "CREATE PUBLICATION",
        PG_QUERY__NODE__NODE_CREATE_SUBSCRIPTION_STMT.rawValue: "CREATE SUBSCRIPTION",
        PG_QUERY__NODE__NODE_CREATE_FOREIGN_SERVER_STMT.rawValue: "CREATE SERVER",
        PG_QUERY__NODE__NODE_CREATE_FDW_STMT.rawValue: "CREATE FOREIGN DATA WRAPPER",
        PG_QUERY__NODE__NODE_CREATE_USER_MAPPING_STMT.rawValue: "CREATE USER MAPPING",
        PG_QUERY__NODE__NODE_IMPORT_FOREIGN_SCHEMA_STMT.rawValue: "IMPORT FOREIGN SCHEMA",
        PG_QUERY__NODE__NODE_CREATE_CAST_STMT.rawValue: "CREATE CAST",
        PG_QUERY__NODE__NODE_CREATE_PLANG_STMT.rawValue: "CREATE LANGUAGE",
        PG_QUERY__NODE__NODE_CREATE_CONVERSION_STMT.rawValue: "CREATE CONVERSION",
    ]
}

extension String {
    fileprivate func replacingUnderscores() -> String {
        String(map { $0 == "_" ? " " : $0 })
    }
}
