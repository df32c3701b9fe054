import CPgQuery

/// `set_config(setting_name, new_value, is_local)` (docs 9.27.1 Configuration Settings Functions).
///
/// The setting's name decides, so it must be known before the statement runs: either a string
/// constant, or — for pg_dump's connection set-up (src/bin/pg_dump/pg_dump.c, setup_connection,
/// PostgreSQL 15.8 and later) —
///
///     SELECT set_config(name, 'view, foreign-table', false) FROM pg_settings
///      WHERE name = 'restrict_nonsystem_relation_kind'
///
/// where the name is the `name` column of `pg_settings` and the WHERE clause pins that column
/// to a constant (``PinnedSettingName``). Anything else with a non-constant name is refused.
extension TreeScan {
    mutating func checkSetConfig(_ call: UnsafePointer<PgQuery__FuncCall>) {
        // The setting's name (and for some settings the value) are literals the cache key erases.
        decision.dependsOnLiterals = true
        let first = call.pointee.n_args > 0 ? call.pointee.args[0] : nil
        let second = call.pointee.n_args > 1 ? call.pointee.args[1] : nil
        // A plain constant: a cast could change the name judged ('rolex'::char(4) is 'role').
        if let setting = NodeValue.plainString(first) {
            judgeSetConfig(setting: setting, value: second)
        } else if let pinned = pinnedSetConfigCalls[UnsafeRawPointer(call)] {
            judgeSetConfig(setting: pinned, value: second)
        } else {
            decision.refuse(.policy("set_config() with a non-constant setting name"))
        }
    }

    /// The decision for setting `setting` to the expression `value`.
    mutating func judgeSetConfig(setting: String, value: NodePointer?) {
        if SettingPolicy.isProtected(setting) {
            // Only a plain string constant PostgreSQL reads as true for a read-only flag
            // (`set_config('default_transaction_read_only', 'on', false)`); no cast, whose
            // output could differ from the text judged.
            if let text = NodeValue.plainString(value), SettingPolicy.isSafeValue(text, forProtected: setting) {
                return
            }
            decision.refuse(.policy("set_config('\(setting)')"))
            return
        }
        switch SettingPolicy.asciiLowercased(setting) {
        case "search_path":
            guard let text = NodeValue.plainString(value) else {
                decision.refuse(.policy("set_config('search_path') with a non-constant value"))
                return
            }
            // Read as check_search_path reads it (SplitIdentifierString: \t, \n, \r, \f count
            // as white space around names).
            if let reason = SettingPolicy.refusal(name: "search_path", value: text) {
                decision.refuse(.policy("set_config('search_path'): \(reason)"))
            }
        case "client_encoding":
            guard let text = NodeValue.plainString(value) else {
                decision.refuse(.policy("set_config('client_encoding') with a non-constant value"))
                return
            }
            if !ClientEncodingPolicy.isReadOnlyAllowed(text) {
                decision.refuse(.policy("client encoding \"\(text)\""))
            }
        default:
            break
        }
    }
}

/// Recognises pg_dump's `set_config(name, …) FROM pg_settings WHERE name = '<constant>'`.
///
/// What makes the shape safe: the set_config call is a top-level target of a SELECT (not a
/// subquery, so `name` cannot be an outer reference), that SELECT has no WITH (no CTE can
/// shadow `pg_settings`), no set operation, and exactly one FROM item — the relation
/// `pg_settings` or `pg_catalog.pg_settings` without a column-alias list — so `name` is its
/// `name` column; and its WHERE clause, as a top-level AND, contains `name = '<constant>'`
/// with PostgreSQL's text equality, so every row the target list is evaluated for has exactly
/// that name. Unqualified `pg_settings` resolves to the catalog view because read-only identities
/// can create neither temporary tables nor objects in schemas before pg_catalog (SettingPolicy).
/// The pinned constant is then judged like a constant name (``TreeScan/judgeSetConfig(setting:value:)``).
enum PinnedSettingName {
    /// The set_config calls of `select` whose name is pinned, with the pinned name.
    static func calls(in select: UnsafePointer<PgQuery__SelectStmt>) -> [UnsafeRawPointer: String] {
        let stmt = select.pointee
        guard stmt.with_clause == nil, stmt.op == PG_QUERY__SET_OPERATION__SETOP_NONE,
              stmt.n_from_clause == 1, let fromItem = stmt.from_clause[0],
              fromItem.pointee.node_case == PG_QUERY__NODE__NODE_RANGE_VAR,
              let rangeVar = fromItem.pointee.range_var,
              let referenceName = settingsViewReference(rangeVar) else { return [:] }
        let pins = pinnedNames(stmt.where_clause, referenceName: referenceName)
        // Two different pins select no row; refusing them keeps the rule simple.
        guard let pinned = pins.first, pins.allSatisfy({ $0 == pinned }) else { return [:] }
        var calls: [UnsafeRawPointer: String] = [:]
        for index in 0..<stmt.n_target_list {
            guard let target = stmt.target_list[index],
                  target.pointee.node_case == PG_QUERY__NODE__NODE_RES_TARGET,
                  let value = target.pointee.res_target?.pointee.val,
                  value.pointee.node_case == PG_QUERY__NODE__NODE_FUNC_CALL,
                  let call = value.pointee.func_call else { continue }
            let names = NodeValue.names(call.pointee.funcname, count: call.pointee.n_funcname)
            guard names == ["set_config"] || names == ["pg_catalog", "set_config"],
                  call.pointee.n_args > 0,
                  isNameColumn(call.pointee.args[0], referenceName: referenceName) else { continue }
            calls[UnsafeRawPointer(call)] = pinned
        }
        return calls
    }

    /// The name `name` may be qualified with when `rangeVar` is the settings view, else nil.
    private static func settingsViewReference(_ rangeVar: UnsafeMutablePointer<PgQuery__RangeVar>) -> String? {
        let catalog = rangeVar.pointee.catalogname.map { String(cString: $0) } ?? ""
        let schema = rangeVar.pointee.schemaname.map { String(cString: $0) } ?? ""
        let relation = rangeVar.pointee.relname.map { String(cString: $0) } ?? ""
        guard catalog.isEmpty, schema.isEmpty || schema == "pg_catalog", relation == "pg_settings" else {
            return nil
        }
        if let alias = rangeVar.pointee.alias {
            // A column-alias list could rename another column to `name`.
            guard alias.pointee.n_colnames == 0, let aliasName = alias.pointee.aliasname else { return nil }
            return String(cString: aliasName)
        }
        return relation
    }

    /// `name` or `<reference>.name`.
    private static func isNameColumn(_ node: NodePointer?, referenceName: String) -> Bool {
        guard let node, node.pointee.node_case == PG_QUERY__NODE__NODE_COLUMN_REF,
              let columnRef = node.pointee.column_ref else { return false }
        let fields = (0..<columnRef.pointee.n_fields).map { NodeValue.string(columnRef.pointee.fields[$0]) }
        return fields == ["name"] || fields == [referenceName, "name"]
    }

    /// Constants `name` is compared equal to in the top-level AND of `whereClause` (nested
    /// ANDs included, as `a AND (b AND c)` is still one AND). A worklist, not recursion.
    private static func pinnedNames(_ whereClause: NodePointer?, referenceName: String) -> [String] {
        var pending: [NodePointer] = whereClause.map { [$0] } ?? []
        var names: [String] = []
        var index = 0
        while index < pending.count {
            let node = pending[index]
            index += 1
            switch node.pointee.node_case {
            case PG_QUERY__NODE__NODE_BOOL_EXPR:
                guard let boolExpr = node.pointee.bool_expr,
                      boolExpr.pointee.boolop == PG_QUERY__BOOL_EXPR_TYPE__AND_EXPR else { continue }
                // Depth-first, in argument order: the children replace the AND where it stood.
                let children = (0..<boolExpr.pointee.n_args).compactMap { boolExpr.pointee.args[$0] }
                pending.insert(contentsOf: children, at: index)
            case PG_QUERY__NODE__NODE_A_EXPR:
                guard let expr = node.pointee.a_expr, expr.pointee.kind == PG_QUERY__A__EXPR__KIND__AEXPR_OP
                else { continue }
                let op = NodeValue.names(expr.pointee.name, count: expr.pointee.n_name)
                guard op == ["="] || op == ["pg_catalog", "="] else { continue }
                let (left, right) = (expr.pointee.lexpr, expr.pointee.rexpr)
                if isNameColumn(left, referenceName: referenceName), let constant = NodeValue.plainString(right) {
                    names.append(constant)
                } else if isNameColumn(right, referenceName: referenceName), let constant = NodeValue.plainString(left) {
                    names.append(constant)
                }
            default:
                continue
            }
        }
        return names
    }

    /// A bare string A_Const: no cast and no COLLATE, so `=` is text equality under the
    /// column's deterministic collation.
}
