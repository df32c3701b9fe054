import CPgQuery

/// What a statement does to the state of its server session beyond its own transaction —
/// the state transaction pooling cannot move from one server connection to another, so a
/// client that creates it is pinned to its server until it is gone (PgBouncer's
/// documentation lists the same features as unsafe in `pool_mode = transaction`).
///
/// Read from the raw parse tree only, so it never depends on the catalog or on literal values
/// (the classification cache may share it between texts differing in literals). It is what
/// the statement *asks for*: whether it succeeds is the server's answer.
public struct SessionStateEffects: OptionSet, Sendable, Hashable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    /// CREATE TEMP TABLE/VIEW/SEQUENCE, SELECT INTO TEMP, or anything named in `pg_temp` —
    /// a relation, or a function, type, domain, operator… (their names are String lists, not
    /// RangeVars; `CREATE FUNCTION pg_temp.f()` and `CREATE DOMAIN pg_temp.d` outlive the
    /// transaction in the backend's temporary schema like a temporary table).
    public static let temporaryObject = SessionStateEffects(rawValue: 1 << 0)
    /// LISTEN (docs: LISTEN registers the *session*).
    public static let listen = SessionStateEffects(rawValue: 1 << 1)
    /// pg_advisory_lock(_shared)/pg_try_advisory_lock(_shared): session-level locks (docs 9.27.10);
    /// the `_xact_` forms end with their transaction and do not pin.
    public static let advisoryLock = SessionStateEffects(rawValue: 1 << 2)
    /// DECLARE ... WITH HOLD (the cursor outlives its transaction).
    public static let holdCursor = SessionStateEffects(rawValue: 1 << 3)
    /// SQL-level PREPARE.
    public static let preparedStatement = SessionStateEffects(rawValue: 1 << 4)
    /// LOAD (a library stays loaded in the backend).
    public static let load = SessionStateEffects(rawValue: 1 << 5)
    /// SET [SESSION] ROLE / SESSION AUTHORIZATION (and RESET of them).
    public static let role = SessionStateEffects(rawValue: 1 << 6)
    /// Session-level SET/RESET of any other setting, SET SESSION CHARACTERISTICS, set_config().
    public static let sessionSetting = SessionStateEffects(rawValue: 1 << 7)

    /// A session-level value of a custom (dotted, placeholder) setting, or a set_config() whose
    /// name is not a literal: placeholders are neither in pg_settings nor reset by RESET ALL
    /// (guc.c: GUC_NO_SHOW_ALL | GUC_NO_RESET_ALL), so they cannot move with the client.
    public static let customSetting = SessionStateEffects(rawValue: 1 << 10)
    /// `search_path` set (SET or set_config) to a value naming `pg_temp` (or one that is not a
    /// literal): with `pg_temp` listed first an unqualified `CREATE TABLE` creates a temporary
    /// table (namespace.c recomputeNamespacePath, RangeVarAdjustRelationPersistence), which
    /// no statement text shows. Released only by DISCARD ALL (its RESET ALL), not DISCARD TEMP.
    public static let temporarySearchPath = SessionStateEffects(rawValue: 1 << 11)
    /// DO: a code block whose statements (SET ROLE, CREATE TEMP TABLE, set_config, …) the
    /// proxy cannot read (the body is a string run by its language handler). Never released.
    public static let anonymousCode = SessionStateEffects(rawValue: 1 << 12)
    /// The server reads statement text differently from the classifier: it reported
    /// `standard_conforming_strings = off` or a client_encoding whose multi-byte characters
    /// can end in `\` (``ClientEncodingPolicy``), so a text can hide statements from it. Set by
    /// the session from the server's ParameterStatus, never by the classifier. Never released.
    public static let divergentLexing = SessionStateEffects(rawValue: 1 << 13)
    /// dblink_connect / dblink_connect_u: a named (or the unnamed) dblink connection lives in the
    /// backend until the session ends — neither the transaction nor DISCARD ALL closes it — and
    /// whoever runs on that backend next can query through it as the role it logged in as
    /// (contrib/dblink: the connection hash is per backend). Never released.
    public static let externalConnection = SessionStateEffects(rawValue: 1 << 14)
    /// A fast-path FunctionCall (55.2.6) of anything but the large-object functions: it names
    /// its function by OID, with no text to read, and `set_config`, `pg_advisory_lock` or
    /// `dblink_connect` called that way leave state behind. Set by the session. Never released.
    public static let fastPathCall = SessionStateEffects(rawValue: 1 << 15)
    /// CREATE of an object under an unqualified name (table, view, sequence, SELECT INTO, type,
    /// domain, function, operator, aggregate, …): it goes to the first schema of the search
    /// path, which is the session's temporary schema when `pg_temp` leads it — and that can
    /// come from where no statement shows it (a role or database default, which a role may set
    /// on itself with ALTER ROLE, or the startup packet). Pins even with `transaction_pin =
    /// refuse` (DDL is not refused); released by DISCARD TEMP or DISCARD ALL.
    public static let unqualifiedCreate = SessionStateEffects(rawValue: 1 << 21)
    /// Transaction pooling: a session-level setting that cannot move with the client — its
    /// value is too long to carry, or the proxy could not read the session's settings back
    /// (SettingsExchange). Set by the session, never by the classifier; released by DISCARD ALL.
    public static let unmovableSetting = SessionStateEffects(rawValue: 1 << 22)
    /// A Parse under a statement name (protocol-level named prepared statement): set by the
    /// session, never by the classifier.
    public static let namedProtocolStatement = SessionStateEffects(rawValue: 1 << 8)
    /// A statement that could not be classified (not UTF-8, over the classifier's budget):
    /// set by the session, which cannot tell what it leaves behind.
    public static let unclassified = SessionStateEffects(rawValue: 1 << 9)

    /// DISCARD ALL: every kind of state above is gone once it succeeds.
    public static let discardAll = SessionStateEffects(rawValue: 1 << 16)
    /// UNLISTEN *.
    public static let unlistenAll = SessionStateEffects(rawValue: 1 << 17)
    /// DEALLOCATE ALL.
    public static let deallocateAll = SessionStateEffects(rawValue: 1 << 18)
    /// DISCARD TEMP.
    public static let discardTemp = SessionStateEffects(rawValue: 1 << 19)
    /// RESET of one setting or RESET ALL (session settings go back to their defaults).
    public static let settingReset = SessionStateEffects(rawValue: 1 << 20)

    /// The effects that leave state behind.
    public static let pinning: SessionStateEffects = [.temporaryObject, .listen, .advisoryLock, .holdCursor,
                                                      .preparedStatement, .load, .role, .sessionSetting, .customSetting,
                                                      .temporarySearchPath, .anonymousCode, .externalConnection,
                                                      .unqualifiedCreate]

    /// Names for logs and errors, in a fixed order.
    public var names: [String] {
        var out: [String] = []
        if contains(.temporaryObject) { out.append("temporary object") }
        if contains(.listen) { out.append("LISTEN") }
        if contains(.advisoryLock) { out.append("session advisory lock") }
        if contains(.holdCursor) { out.append("WITH HOLD cursor") }
        if contains(.preparedStatement) { out.append("PREPARE") }
        if contains(.load) { out.append("LOAD") }
        if contains(.role) { out.append("SET ROLE/SESSION AUTHORIZATION") }
        if contains(.sessionSetting) { out.append("session-level SET") }
        if contains(.customSetting) { out.append("custom setting") }
        if contains(.temporarySearchPath) { out.append("search_path naming pg_temp") }
        if contains(.anonymousCode) { out.append("DO block") }
        if contains(.externalConnection) { out.append("dblink connection") }
        if contains(.fastPathCall) { out.append("fast-path function call") }
        if contains(.unqualifiedCreate) { out.append("CREATE of an unqualified name (temporary if pg_temp leads the search_path)") }
        if contains(.divergentLexing) { out.append("standard_conforming_strings off or client_encoding read differently") }
        if contains(.unmovableSetting) { out.append("session setting that cannot move (too long, or not readable)") }
        if contains(.namedProtocolStatement) { out.append("named prepared statement") }
        if contains(.unclassified) { out.append("unclassified statement") }
        return out
    }

    /// Session-level advisory lock functions (src/backend/utils/adt/lockfuncs.c).
    static let sessionAdvisoryLockFunctions: Set<String> = [
        "pg_advisory_lock", "pg_advisory_lock_shared", "pg_try_advisory_lock", "pg_try_advisory_lock_shared",
    ]

    /// The effects of one raw statement, and whether a literal value decided them (such a
    /// classification must not be cached under a literal-blind key).
    /// Also the prepared statements it names (``StatementClassification/preparedStatementNames``).
    static func of(_ node: NodePointer) -> (effects: SessionStateEffects, readLiterals: Bool, preparedStatementNames: [String]) {
        var (effects, readLiterals) = topLevel(node)
        var names: [String] = []
        ParseTreeWalker.walk(UnsafeRawPointer(node)) { nodeCase, message in
            switch nodeCase {
            case PG_QUERY__NODE__NODE_EXECUTE_STMT:
                // EXECUTE, EXPLAIN EXECUTE, CREATE TABLE … AS EXECUTE (gram.y ExecuteStmt).
                if let name = message.assumingMemoryBound(to: PgQuery__ExecuteStmt.self).pointee.name { names.append(String(cString: name)) }
            case PG_QUERY__NODE__NODE_PREPARE_STMT:
                if let name = message.assumingMemoryBound(to: PgQuery__PrepareStmt.self).pointee.name { names.append(String(cString: name)) }
            case PG_QUERY__NODE__NODE_DEALLOCATE_STMT:
                // DEALLOCATE ALL has no name.
                if let name = message.assumingMemoryBound(to: PgQuery__DeallocateStmt.self).pointee.name, name.pointee != 0 {
                    names.append(String(cString: name))
                }
            case PG_QUERY__NODE__NODE_STRING:
                // A name part (qualified names are String lists; string literals are A_Const).
                let string = message.assumingMemoryBound(to: PgQuery__String.self)
                if let value = string.pointee.sval, isTemporarySchema(String(cString: value)) { effects.insert(.temporaryObject) }
            case PG_QUERY__NODE__NODE_RANGE_VAR:
                let rangeVar = message.assumingMemoryBound(to: PgQuery__RangeVar.self)
                let persistence = rangeVar.pointee.relpersistence.map { String(cString: $0) } ?? ""
                let schema = rangeVar.pointee.schemaname.map { String(cString: $0) } ?? ""
                if persistence == "t" || isTemporarySchema(schema) { effects.insert(.temporaryObject) }
            case PG_QUERY__NODE__NODE_COLUMN_REF, PG_QUERY__NODE__NODE_A_INDIRECTION:
                // Attribute notation calls a one-argument function: `(42::bigint).pg_advisory_lock`
                // (ParseFuncOrColumn; found in review: the lock stayed on a pooled connection).
                for name in NodeValue.attributeNames(nodeCase, message) {
                    if sessionAdvisoryLockFunctions.contains(name) { effects.insert(.advisoryLock) }
                    if name == "dblink_connect" || name == "dblink_connect_u" { effects.insert(.externalConnection) }
                }
            case PG_QUERY__NODE__NODE_UPDATE_STMT:
                // `UPDATE pg_settings SET setting = …` is SET by another name: the view's rule
                // pg_settings_u calls set_config(name, setting, false) (system_views.sql; found
                // in review: a search_path and a statement_timeout stayed on a pooled
                // connection). Which setting and value is in the WHERE and SET clauses.
                let target = message.assumingMemoryBound(to: PgQuery__UpdateStmt.self).pointee.relation?.pointee
                let schema = target?.schemaname.map { String(cString: $0) } ?? ""
                if target?.relname.map({ String(cString: $0) }) == "pg_settings", schema.isEmpty || schema == "pg_catalog" {
                    effects.formUnion([.sessionSetting, .temporarySearchPath])
                }
            case PG_QUERY__NODE__NODE_FUNC_CALL:
                let call = message.assumingMemoryBound(to: PgQuery__FuncCall.self)
                let names = NodeValue.names(call.pointee.funcname, count: call.pointee.n_funcname)
                if let name = names.last {
                    if sessionAdvisoryLockFunctions.contains(name) { effects.insert(.advisoryLock) }
                    if name == "dblink_connect" || name == "dblink_connect_u" { effects.insert(.externalConnection) }
                    if name == "set_config" {
                        readLiterals = true
                        effects.formUnion(setConfig(call))
                    }
                }
            default:
                break
            }
            return true
        }
        return (effects, readLiterals, names)
    }

    /// `pg_temp` (the session's temporary schema) or an explicit `pg_temp_N`; lower-cased, so a
    /// quoted "PG_TEMP" pins needlessly, never wrongly.
    static func isTemporarySchema(_ name: String) -> Bool {
        name.lowercased().hasPrefix("pg_temp")
    }

    /// set_config(name, value, is_local) (docs 9.27.1): a literal true is_local ends with the
    /// transaction; a literal name without a dot is an ordinary setting — but `role` and
    /// `session_authorization` are SET ROLE / SET SESSION AUTHORIZATION (guc.c: neither is in
    /// pg_settings nor reset by RESET ALL, so they cannot move), and a `search_path` naming
    /// pg_temp lets unqualified CREATEs make temporary objects; anything else may be a placeholder.
    /// Only bare literals are read: a cast can change the value (found in review:
    /// `'1'::numeric(1,-1)::int::boolean` is false, `'rolex'::char(4)` is `role`, and both let
    /// a role or settings stay on a pooled connection for the next client).
    private static func setConfig(_ call: UnsafePointer<PgQuery__FuncCall>) -> SessionStateEffects {
        guard call.pointee.n_args == 3, let args = call.pointee.args else { return .customSetting }
        switch NodeValue.plainConstant(args[2]) {
        case .boolean(true)?: return []
        case .string(let text)? where ["true", "on", "t", "yes", "y", "1"].contains(text.lowercased()): return []
        default: break
        }
        guard let name = NodeValue.plainString(args[0]), !name.contains(".") else { return .customSetting }
        // GUC names are matched case-insensitively (guc.c guc_name_compare).
        switch name.lowercased() {
        case "role", "session_authorization":
            return .role
        case "search_path":
            if let value = NodeValue.plainString(args[1]), !isTemporarySchemaListed(value) { return .sessionSetting }
            return [.sessionSetting, .temporarySearchPath]
        default:
            return .sessionSetting
        }
    }

    /// Whether a search_path value (one list element or the whole list) names pg_temp anywhere.
    private static func isTemporarySchemaListed(_ value: String) -> Bool {
        value.lowercased().contains("pg_temp")
    }

    /// A relation created under this name: unqualified (and not already temporary by its own
    /// spelling, which ``temporaryObject`` covers) goes wherever the search path says.
    private static func unqualified(_ rangeVar: UnsafeMutablePointer<PgQuery__RangeVar>?) -> SessionStateEffects {
        guard let rangeVar else { return [] }
        let schema = rangeVar.pointee.schemaname.map { String(cString: $0) } ?? ""
        let persistence = rangeVar.pointee.relpersistence.map { String(cString: $0) } ?? ""
        return schema.isEmpty && persistence != "t" ? .unqualifiedCreate : []
    }

    /// Effects read from the statement node itself, and whether a literal decided them.
    private static func topLevel(_ node: NodePointer) -> (SessionStateEffects, Bool) {
        if node.pointee.node_case == PG_QUERY__NODE__NODE_VARIABLE_SET_STMT,
           let set = node.pointee.variable_set_stmt?.pointee, set.is_local == 0,
           set.kind == PG_QUERY__VARIABLE_SET_KIND__VAR_SET_VALUE,
           set.name.map({ String(cString: $0) })?.lowercased() == "search_path" {
            // SET search_path = pg_temp, …: the value is read, so the cache must not share it.
            let args = (0..<Int(set.n_args)).compactMap { set.args?[$0] }
            let namesTemp = args.contains { arg in
                guard case .string(let value)? = NodeValue.constant(arg) else { return true }
                return isTemporarySchemaListed(value)
            }
            return (namesTemp ? [.sessionSetting, .temporarySearchPath] : .sessionSetting, true)
        }
        return (topLevelEffects(node), false)
    }

    private static func topLevelEffects(_ node: NodePointer) -> SessionStateEffects {
        switch node.pointee.node_case {
        case PG_QUERY__NODE__NODE_DO_STMT:
            return .anonymousCode
        case PG_QUERY__NODE__NODE_CREATE_STMT:
            return unqualified(node.pointee.create_stmt?.pointee.relation)
        case PG_QUERY__NODE__NODE_CREATE_TABLE_AS_STMT:
            return unqualified(node.pointee.create_table_as_stmt?.pointee.into?.pointee.rel)
        case PG_QUERY__NODE__NODE_SELECT_STMT:
            guard let into = node.pointee.select_stmt?.pointee.into_clause else { return [] }
            return unqualified(into.pointee.rel)
        case PG_QUERY__NODE__NODE_VIEW_STMT:
            return unqualified(node.pointee.view_stmt?.pointee.view)
        case PG_QUERY__NODE__NODE_CREATE_SEQ_STMT:
            return unqualified(node.pointee.create_seq_stmt?.pointee.sequence)
        case PG_QUERY__NODE__NODE_COMPOSITE_TYPE_STMT:
            return unqualified(node.pointee.composite_type_stmt?.pointee.typevar)
        case PG_QUERY__NODE__NODE_CREATE_FUNCTION_STMT:
            return node.pointee.create_function_stmt?.pointee.n_funcname == 1 ? .unqualifiedCreate : []
        case PG_QUERY__NODE__NODE_DEFINE_STMT:
            return node.pointee.define_stmt?.pointee.n_defnames == 1 ? .unqualifiedCreate : []
        case PG_QUERY__NODE__NODE_CREATE_ENUM_STMT:
            return node.pointee.create_enum_stmt?.pointee.n_type_name == 1 ? .unqualifiedCreate : []
        case PG_QUERY__NODE__NODE_CREATE_RANGE_STMT:
            return node.pointee.create_range_stmt?.pointee.n_type_name == 1 ? .unqualifiedCreate : []
        case PG_QUERY__NODE__NODE_CREATE_DOMAIN_STMT:
            return node.pointee.create_domain_stmt?.pointee.n_domainname == 1 ? .unqualifiedCreate : []
        case PG_QUERY__NODE__NODE_LISTEN_STMT:
            return .listen
        case PG_QUERY__NODE__NODE_UNLISTEN_STMT:
            let name = node.pointee.unlisten_stmt.pointee.conditionname.map { String(cString: $0) } ?? ""
            return name.isEmpty ? .unlistenAll : []
        case PG_QUERY__NODE__NODE_PREPARE_STMT:
            return .preparedStatement
        case PG_QUERY__NODE__NODE_DEALLOCATE_STMT:
            let name = node.pointee.deallocate_stmt.pointee.name.map { String(cString: $0) } ?? ""
            return name.isEmpty ? .deallocateAll : []
        case PG_QUERY__NODE__NODE_LOAD_STMT:
            return .load
        case PG_QUERY__NODE__NODE_DECLARE_CURSOR_STMT:
            // CURSOR_OPT_HOLD (src/include/nodes/parsenodes.h).
            return node.pointee.declare_cursor_stmt.pointee.options & 0x0020 != 0 ? .holdCursor : []
        case PG_QUERY__NODE__NODE_DISCARD_STMT:
            switch node.pointee.discard_stmt.pointee.target {
            case PG_QUERY__DISCARD_MODE__DISCARD_ALL: return .discardAll
            case PG_QUERY__DISCARD_MODE__DISCARD_TEMP: return .discardTemp
            default: return []
            }
        case PG_QUERY__NODE__NODE_VARIABLE_SET_STMT:
            let set = node.pointee.variable_set_stmt.pointee
            // SET LOCAL ends with the transaction; SET TRANSACTION is the transaction's own.
            if set.is_local != 0 { return [] }
            let name = set.name.map { String(cString: $0) }?.lowercased() ?? ""
            if set.kind == PG_QUERY__VARIABLE_SET_KIND__VAR_SET_MULTI && name == "transaction" { return [] }
            // RESET leaves no state behind (RESET ALL also resets the role, guc.c ResetAllOptions).
            if set.kind == PG_QUERY__VARIABLE_SET_KIND__VAR_RESET || set.kind == PG_QUERY__VARIABLE_SET_KIND__VAR_RESET_ALL {
                return .settingReset
            }
            if name == "role" || name == "session_authorization" { return .role }
            return name.contains(".") ? .customSetting : .sessionSetting
        default:
            return []
        }
    }
}
