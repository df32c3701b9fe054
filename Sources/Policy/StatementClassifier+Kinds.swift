import CPgQuery

/// Decisions by top-level statement kind. Command tags are PostgreSQL's
/// (src/backend/tcop/cmdtaglist.h, CreateCommandTag in utility.c).
extension StatementClassifier {
    func decideKind(_ node: NodePointer) -> Decision {
        let n = node.pointee
        switch n.node_case {
        case PG_QUERY__NODE__NODE_SELECT_STMT:
            // SELECT INTO creates a table: DDL, as pgAudit's own record of it (its first record
            // is the inner query's READ,SELECT).
            let into = n.select_stmt.pointee.into_clause != nil
            return Decision(tag: into ? "SELECT INTO" : "SELECT", auditClass: into ? .ddl : .read, refusal: nil)
        case PG_QUERY__NODE__NODE_INSERT_STMT: return write("INSERT")
        case PG_QUERY__NODE__NODE_UPDATE_STMT: return write("UPDATE")
        case PG_QUERY__NODE__NODE_DELETE_STMT: return write("DELETE")
        case PG_QUERY__NODE__NODE_MERGE_STMT: return write("MERGE")
        case PG_QUERY__NODE__NODE_TRUNCATE_STMT: return write("TRUNCATE TABLE")
        case PG_QUERY__NODE__NODE_EXPLAIN_STMT: return decideExplain(n.explain_stmt)
        case PG_QUERY__NODE__NODE_PREPARE_STMT:
            return wrapping("PREPARE", n.prepare_stmt.pointee.query, auditClass: nil)
        case PG_QUERY__NODE__NODE_DECLARE_CURSOR_STMT:
            return wrapping("DECLARE CURSOR", n.declare_cursor_stmt.pointee.query, auditClass: .read)
        case PG_QUERY__NODE__NODE_EXECUTE_STMT:
            // Its statement was decided when it was PREPAREd (a refused PREPARE never exists).
            return allowed("EXECUTE", .misc)
        case PG_QUERY__NODE__NODE_COPY_STMT: return decideCopy(n.copy_stmt)
        case PG_QUERY__NODE__NODE_VARIABLE_SET_STMT: return decideSet(n.variable_set_stmt)
        case PG_QUERY__NODE__NODE_VARIABLE_SHOW_STMT: return allowed("SHOW", .misc)
        case PG_QUERY__NODE__NODE_TRANSACTION_STMT: return decideTransaction(n.transaction_stmt)
        case PG_QUERY__NODE__NODE_FETCH_STMT:
            return allowed(n.fetch_stmt.pointee.ismove != 0 ? "MOVE" : "FETCH", .misc)
        case PG_QUERY__NODE__NODE_CLOSE_PORTAL_STMT: return allowed("CLOSE CURSOR", .misc)
        case PG_QUERY__NODE__NODE_DEALLOCATE_STMT:
            // CreateCommandTag (utility.c): DEALLOCATE without a name is DEALLOCATE ALL.
            let name = n.deallocate_stmt.pointee.name
            return allowed(name == nil || name?.pointee == 0 ? "DEALLOCATE ALL" : "DEALLOCATE", .misc)
        case PG_QUERY__NODE__NODE_UNLISTEN_STMT: return allowed("UNLISTEN", .misc)
        case PG_QUERY__NODE__NODE_CONSTRAINTS_SET_STMT: return allowed("SET CONSTRAINTS", .misc)
        case PG_QUERY__NODE__NODE_DISCARD_STMT:
            switch n.discard_stmt.pointee.target {
            case PG_QUERY__DISCARD_MODE__DISCARD_PLANS: return allowed("DISCARD PLANS", .misc)
            case PG_QUERY__DISCARD_MODE__DISCARD_TEMP: return allowed("DISCARD TEMP", .misc)
            case PG_QUERY__DISCARD_MODE__DISCARD_SEQUENCES: return allowed("DISCARD SEQUENCES", .misc)
            default:
                // DISCARD ALL includes RESET ALL, which would drop a read-only default.
                return policy("DISCARD ALL", .misc)
            }
        case PG_QUERY__NODE__NODE_LOCK_STMT:
            // LOCK mode numbers are lockdefs.h's; 1 is AccessShareLock.
            return n.lock_stmt.pointee.mode > 1
                ? policy("LOCK TABLE", .misc, what: "LOCK TABLE in a mode stronger than ACCESS SHARE")
                : allowed("LOCK TABLE", .misc)
        // PostgreSQL allows LISTEN in a read-only transaction (utility.c,
        // ClassifyUtilityCommandAsReadOnly: COMMAND_OK_IN_READ_ONLY_TXN). So is NOTIFY, but a
        // notification can make a listening writer act on the read-only identity's behalf:
        // refused, as is pg_notify().
        case PG_QUERY__NODE__NODE_LISTEN_STMT: return allowed("LISTEN", .misc)
        case PG_QUERY__NODE__NODE_NOTIFY_STMT: return policy("NOTIFY", .misc)
        case PG_QUERY__NODE__NODE_VACUUM_STMT:
            return policy(n.vacuum_stmt.pointee.is_vacuumcmd != 0 ? "VACUUM" : "ANALYZE", .misc)
        // GetCommandLogLevel (utility.c), which pgAudit follows: CLUSTER and ALTER SYSTEM are DDL.
        case PG_QUERY__NODE__NODE_CLUSTER_STMT: return policy("CLUSTER", .ddl)
        case PG_QUERY__NODE__NODE_REINDEX_STMT: return policy("REINDEX", .misc)
        case PG_QUERY__NODE__NODE_CHECK_POINT_STMT: return policy("CHECKPOINT", .misc)
        case PG_QUERY__NODE__NODE_LOAD_STMT: return policy("LOAD", .misc)
        case PG_QUERY__NODE__NODE_DO_STMT: return policy("DO", .function)
        case PG_QUERY__NODE__NODE_CALL_STMT: return policy("CALL", .function)
        case PG_QUERY__NODE__NODE_ALTER_SYSTEM_STMT: return policy("ALTER SYSTEM", .ddl)
        case PG_QUERY__NODE__NODE_GRANT_STMT:
            return readOnly(n.grant_stmt.pointee.is_grant != 0 ? "GRANT" : "REVOKE", .role)
        case PG_QUERY__NODE__NODE_GRANT_ROLE_STMT:
            return readOnly(n.grant_role_stmt.pointee.is_grant != 0 ? "GRANT ROLE" : "REVOKE ROLE", .role)
        case PG_QUERY__NODE__NODE_CREATE_ROLE_STMT: return readOnly("CREATE ROLE", .role)
        case PG_QUERY__NODE__NODE_ALTER_ROLE_STMT, PG_QUERY__NODE__NODE_ALTER_ROLE_SET_STMT:
            return readOnly("ALTER ROLE", .role)
        case PG_QUERY__NODE__NODE_DROP_ROLE_STMT: return readOnly("DROP ROLE", .role)
        case PG_QUERY__NODE__NODE_COMMENT_STMT: return readOnly("COMMENT", .ddl)
        case PG_QUERY__NODE__NODE_SEC_LABEL_STMT: return readOnly("SECURITY LABEL", .ddl)
        case PG_QUERY__NODE__NODE_REFRESH_MAT_VIEW_STMT: return readOnly("REFRESH MATERIALIZED VIEW", .ddl)
        case PG_QUERY__NODE__NODE_CREATE_TABLE_AS_STMT:
            let stmt = n.create_table_as_stmt.pointee
            if stmt.is_select_into != 0 { return readOnly("SELECT INTO", .ddl) }
            return readOnly(stmt.objtype == PG_QUERY__OBJECT_TYPE__OBJECT_MATVIEW
                            ? "CREATE MATERIALIZED VIEW" : "CREATE TABLE AS", .ddl)
        case PG_QUERY__NODE__NODE_DROP_STMT:
            return readOnly("DROP " + Self.objectName(n.drop_stmt.pointee.remove_type), .ddl)
        case PG_QUERY__NODE__NODE_ALTER_TABLE_STMT:
            return readOnly("ALTER " + Self.objectName(n.alter_table_stmt.pointee.objtype), .ddl)
        case PG_QUERY__NODE__NODE_RENAME_STMT:
            // CreateCommandTag (utility.c): renaming a column is tagged by its relation's type;
            // renaming a role is pgAudit's ROLE class.
            let rename = n.rename_stmt.pointee
            let renamed = rename.rename_type == PG_QUERY__OBJECT_TYPE__OBJECT_COLUMN ? rename.relation_type : rename.rename_type
            return readOnly("ALTER " + Self.objectName(renamed), rename.rename_type == PG_QUERY__OBJECT_TYPE__OBJECT_ROLE ? .role : .ddl)
        // pgAudit's ROLE class includes ALTER DEFAULT PRIVILEGES.
        case PG_QUERY__NODE__NODE_ALTER_DEFAULT_PRIVILEGES_STMT: return readOnly("ALTER DEFAULT PRIVILEGES", .role)
        case PG_QUERY__NODE__NODE_ALTER_OBJECT_SCHEMA_STMT:
            return readOnly("ALTER " + Self.objectName(n.alter_object_schema_stmt.pointee.object_type), .ddl)
        case PG_QUERY__NODE__NODE_ALTER_OWNER_STMT:
            return readOnly("ALTER " + Self.objectName(n.alter_owner_stmt.pointee.object_type), .ddl)
        case PG_QUERY__NODE__NODE_DEFINE_STMT:
            return readOnly("CREATE " + Self.objectName(n.define_stmt.pointee.kind), .ddl)
        case PG_QUERY__NODE__NODE_CREATE_FUNCTION_STMT:
            return readOnly(n.create_function_stmt.pointee.is_procedure != 0
                            ? "CREATE PROCEDURE" : "CREATE FUNCTION", .ddl)
        default:
            // Every other statement kind is DDL or server administration: refused.
            return readOnly(Self.utilityTag(n.node_case), .ddl)
        }
    }

    private func allowed(_ tag: String, _ auditClass: AuditClass) -> Decision {
        Decision(tag: tag, auditClass: auditClass, refusal: nil)
    }

    private func write(_ tag: String) -> Decision {
        Decision(tag: tag, auditClass: .write, refusal: .readOnly(tag))
    }

    private func readOnly(_ tag: String, _ auditClass: AuditClass) -> Decision {
        Decision(tag: tag, auditClass: auditClass, refusal: .readOnly(tag))
    }

    private func policy(_ tag: String, _ auditClass: AuditClass, what: String? = nil) -> Decision {
        Decision(tag: tag, auditClass: auditClass, refusal: .policy(what ?? tag))
    }

    /// PREPARE / DECLARE: the inner statement decides, under its own tag.
    private func wrapping(_ tag: String, _ query: NodePointer?, auditClass: AuditClass?) -> Decision {
        guard let query else { return allowed(tag, auditClass ?? .misc) }
        let inner = decide(query)
        var decision = Decision(tag: tag, auditClass: auditClass ?? inner.auditClass, refusal: nil)
        decision.adopt(inner)
        return decision
    }

    /// EXPLAIN runs its statement only with ANALYZE (docs: SQL Commands, EXPLAIN).
    private func decideExplain(_ explain: UnsafeMutablePointer<PgQuery__ExplainStmt>) -> Decision {
        var analyze = false
        var dependsOnLiterals = false
        for index in 0..<explain.pointee.n_options {
            guard let option = explain.pointee.options[index],
                  option.pointee.node_case == PG_QUERY__NODE__NODE_DEF_ELEM,
                  let defElem = option.pointee.def_elem,
                  String(cString: defElem.pointee.defname) == "analyze" else { continue }
            dependsOnLiterals = dependsOnLiterals || NodeValue.constant(defElem.pointee.arg) != nil
            // An unreadable value is an error in PostgreSQL; assume it runs (fail closed).
            analyze = NodeValue.defElemBoolean(defElem.pointee.arg) ?? true
        }
        guard let query = explain.pointee.query else { return allowed("EXPLAIN", .read) }
        // A plain EXPLAIN runs nothing, but planning a write folds what the statement never
        // names (the target's column defaults and generated columns, rewriteHandler.c
        // build_column_default; ON CONFLICT's arbiter index expressions), calling any immutable
        // function among them: its scan refuses every write in it, at the top or nested in WITH
        // (``TreeScan/visit(_:_:)``), though PostgreSQL allows them in a read-only transaction.
        // Its audit class stays READ: nothing is executed.
        if analyze {
            var decision = wrapping("EXPLAIN", query, auditClass: nil)
            decision.dependsOnLiterals = decision.dependsOnLiterals || dependsOnLiterals
            return decision
        }
        var scan = TreeScan(writeTag: "EXPLAIN", skipping: nil, ignoresWrites: true, root: query)
        scan.scan(query)
        var decision = Decision(tag: "EXPLAIN", auditClass: .read, refusal: nil,
                                dependsOnLiterals: dependsOnLiterals)
        decision.adopt(scan.decision)
        return decision
    }

    /// COPY FROM writes; COPY TO a file or program acts on the server host; COPY TO STDOUT reads,
    /// unless its query is an INSERT, UPDATE, DELETE or MERGE with RETURNING (docs: SQL
    /// Commands, COPY, "query"), which writes: its audit class is WRITE (pgAudit's first record
    /// of it is the inner statement's, `WRITE,DELETE`) and the inner statement's refusal holds.
    private func decideCopy(_ copy: UnsafeMutablePointer<PgQuery__CopyStmt>) -> Decision {
        let stmt = copy.pointee
        if stmt.is_from != 0 {
            return Decision(tag: "COPY", auditClass: .write, refusal: .readOnly("COPY FROM"))
        }
        let hasFile = stmt.filename.map { $0.pointee != 0 } ?? false
        if stmt.is_program != 0 || hasFile {
            return policy("COPY", .read, what: "COPY TO a file or program")
        }
        guard let query = stmt.query else {
            var decision = allowed("COPY", .read)
            decision.copiesStoredRows = true
            return decision
        }
        let inner = decide(query)
        var decision = Decision(tag: "COPY", auditClass: inner.auditClass == .write ? .write : .read, refusal: nil)
        decision.adopt(inner)
        return decision
    }
}
