import CPgQuery

/// Owns one libpg_query parse: the protobuf bytes PostgreSQL's raw parser produced
/// and the protobuf-c structs unpacked from them. Freed in `deinit`.
///
/// Protobuf-c structs were chosen over `pg_query_parse`'s JSON: no JSON parser (and no
/// Foundation) is needed, and the generated descriptors let ``ParseTreeWalker`` visit
/// every child message by reflection, so no node type can be skipped by omission.
final class ParsedQuery {
    let result: UnsafeMutablePointer<PgQuery__ParseResult>

    private init(result: UnsafeMutablePointer<PgQuery__ParseResult>) {
        self.result = result
    }

    deinit {
        pg_query__parse_result__free_unpacked(result, nil)
    }

    enum Outcome {
        case parsed(ParsedQuery)
        /// The whole text is refused: a syntax error, or beyond ``ClassifierBudget``.
        case syntaxError(Refusal)
    }

    /// Parses `sql` unless it could nest deeper than this thread's stack allows
    /// (``ClassifierBudget/nestingRefusal(for:)``; `nestingChecked` when the caller already
    /// asked) or its tree is larger than ``ClassifierBudget/maxParseTreeBytes``.
    static func parse(_ sql: String, nestingChecked: Bool = false) -> Outcome {
        if !nestingChecked, let refusal = ClassifierBudget.nestingRefusal(for: sql) {
            return .syntaxError(refusal)
        }
        let raw = pg_query_parse_protobuf(sql)
        defer { pg_query_free_protobuf_parse_result(raw) }
        if let error = raw.error {
            return .syntaxError(Refusal.syntaxError(error.pointee))
        }
        guard raw.parse_tree.len <= ClassifierBudget.maxParseTreeBytes else {
            return .syntaxError(.parseTreeTooLarge(bytes: raw.parse_tree.len))
        }
        let unpacked = raw.parse_tree.data.withMemoryRebound(to: UInt8.self, capacity: raw.parse_tree.len) {
            pg_query__parse_result__unpack(nil, raw.parse_tree.len, $0)
        }
        guard let unpacked else {
            return .syntaxError(Refusal(sqlState: "XX000", message: "could not decode parse tree",
                                        isPostgreSQLText: false))
        }
        return .parsed(ParsedQuery(result: unpacked))
    }

    /// The top-level statement nodes (RawStmt.stmt), in order.
    var statements: [UnsafeMutablePointer<PgQuery__Node>] {
        var nodes: [UnsafeMutablePointer<PgQuery__Node>] = []
        for index in 0..<result.pointee.n_stmts {
            if let raw = result.pointee.stmts[index], let stmt = raw.pointee.stmt {
                nodes.append(stmt)
            }
        }
        return nodes
    }
}

/// Visits every `Node` in a protobuf-c message tree by reflecting over the generated
/// field descriptors: every MESSAGE-typed field, repeated or single, set `oneof` member
/// or plain, is descended into. `visit` returns false to skip a node's children.
///
/// Iterative (an explicit stack of messages being read), so its stack use does not grow with
/// the tree's depth; the order is the recursive pre-order: a node, then its children in field
/// order.
struct ParseTreeWalker {
    typealias Visit = (PgQuery__Node__NodeCase, UnsafeRawPointer) -> Bool

    /// One message being read: the next field and, in a repeated field, the next item.
    private struct Frame {
        let message: UnsafeRawPointer
        let fields: UnsafePointer<ProtobufCFieldDescriptor>
        let fieldCount: Int
        let isNode: Bool
        var field = 0
        var item = 0

        init?(_ message: UnsafeRawPointer) {
            let base = message.assumingMemoryBound(to: ProtobufCMessage.self)
            // Messages without fields (e.g. an empty String value) have no field table.
            guard let descriptor = base.pointee.descriptor, let fields = descriptor.pointee.fields else { return nil }
            self.message = message
            self.fields = fields
            fieldCount = Int(descriptor.pointee.n_fields)
            isNode = descriptor == cpq_node_descriptor()
        }

        /// The next child message and the field holding it, or nil when all were read.
        mutating func nextChild() -> (UnsafeRawPointer, ProtobufCFieldDescriptor)? {
            while field < fieldCount {
                let descriptor = fields[field]
                guard descriptor.type == PROTOBUF_C_TYPE_MESSAGE else {
                    field += 1
                    continue
                }
                if descriptor.label == PROTOBUF_C_LABEL_REPEATED {
                    let count = message.load(fromByteOffset: Int(descriptor.quantifier_offset), as: Int.self)
                    guard count > 0,
                          let array = message.load(fromByteOffset: Int(descriptor.offset), as: UnsafeRawPointer?.self)
                    else {
                        field += 1
                        continue
                    }
                    while item < count {
                        let child = array.load(fromByteOffset: item * MemoryLayout<UnsafeRawPointer>.stride,
                                               as: UnsafeRawPointer?.self)
                        item += 1
                        if let child { return (child, descriptor) }
                    }
                    field += 1
                    item = 0
                } else {
                    field += 1
                    if descriptor.flags & PROTOBUF_C_FIELD_FLAG_ONEOF.rawValue != 0 {
                        let selected = message.load(fromByteOffset: Int(descriptor.quantifier_offset), as: UInt32.self)
                        guard selected == descriptor.id else { continue }
                    }
                    if let child = message.load(fromByteOffset: Int(descriptor.offset), as: UnsafeRawPointer?.self) {
                        return (child, descriptor)
                    }
                }
            }
            return nil
        }
    }

    static func walk(_ message: UnsafeRawPointer, _ visit: Visit) {
        guard let root = Frame(message) else { return }
        var stack = [root]
        while !stack.isEmpty {
            guard let (child, field) = stack[stack.count - 1].nextChild() else {
                stack.removeLast()
                continue
            }
            if shouldDescend(child, field: field, inNode: stack[stack.count - 1].isNode, visit),
               let frame = Frame(child) {
                stack.append(frame)
            }
        }
    }

    private static func shouldDescend(_ child: UnsafeRawPointer, field: ProtobufCFieldDescriptor,
                                      inNode: Bool, _ visit: Visit) -> Bool {
        if inNode {
            // The Node oneof's field numbers are the NodeCase values.
            return visit(PgQuery__Node__NodeCase(rawValue: field.id), child)
        } else if field.descriptor == UnsafeRawPointer(cpq_select_stmt_descriptor()) {
            // SelectStmt.larg / rarg hold SelectStmt directly, not wrapped in a Node.
            return visit(PG_QUERY__NODE__NODE_SELECT_STMT, child)
        } else if field.descriptor == UnsafeRawPointer(cpq_range_var_descriptor()) {
            // Statement targets (InsertStmt.relation, CopyStmt.relation, IntoClause.rel, ...)
            // hold RangeVar directly.
            return visit(PG_QUERY__NODE__NODE_RANGE_VAR, child)
        } else if field.descriptor == UnsafeRawPointer(cpq_type_name_descriptor()) {
            // TypeCast.type_name, ColumnDef.type_name, ... hold TypeName directly.
            return visit(PG_QUERY__NODE__NODE_TYPE_NAME, child)
        }
        return true
    }
}

extension Refusal {
    /// A libpg_query error as PostgreSQL reports it (42601 syntax_error, with the cursor).
    static func syntaxError(_ error: PgQueryError) -> Refusal {
        let message = error.message.map { String(cString: $0) } ?? "syntax error"
        let cursor = Int(error.cursorpos)
        return Refusal(sqlState: "42601", message: message, isPostgreSQLText: true,
                       cursorPosition: cursor > 0 ? cursor : nil)
    }
}

/// Reading small leaf values out of parse nodes.
enum NodeValue {
    /// The `sval` of a String node.
    static func string(_ node: UnsafeMutablePointer<PgQuery__Node>?) -> String? {
        guard let node, node.pointee.node_case == PG_QUERY__NODE__NODE_STRING,
              let value = node.pointee.string?.pointee.sval else { return nil }
        return String(cString: value)
    }

    /// Dotted names (funcname, names lists) as lower-level String parts.
    static func names(_ list: UnsafeMutablePointer<UnsafeMutablePointer<PgQuery__Node>?>?, count: Int) -> [String] {
        guard let list else { return [] }
        return (0..<count).compactMap { string(list[$0]) }
    }

    /// The names a field selection may call as functions (attribute notation: PostgreSQL reads
    /// `(x).f` as `f(x)` and `t.f` as `f(t)` when no field matches, parse_func.c
    /// ParseFuncOrColumn): an A_Indirection's field names, a ColumnRef's last name
    /// (``columnRefAttribute(_:)``). Empty for any other node.
    static func attributeNames(_ nodeCase: PgQuery__Node__NodeCase, _ message: UnsafeRawPointer) -> [String] {
        switch nodeCase {
        case PG_QUERY__NODE__NODE_COLUMN_REF:
            return columnRefAttribute(message.assumingMemoryBound(to: PgQuery__ColumnRef.self).pointee).map { [$0.name] } ?? []
        case PG_QUERY__NODE__NODE_A_INDIRECTION:
            let indirection = message.assumingMemoryBound(to: PgQuery__AIndirection.self).pointee
            return names(indirection.indirection, count: indirection.n_indirection)
        default:
            return []
        }
    }

    /// The field of `t.f`, `s.t.f` or `c.s.t.f` that PostgreSQL calls as `f(t)` when the
    /// relation has no such column, with `t` when only the range name qualifies it
    /// (src/backend/parser/parse_expr.c transformColumnRef: the names before the last are a
    /// relation, never a function; a lone name is a column or a whole row). Nil for `t.*`.
    static func columnRefAttribute(_ ref: PgQuery__ColumnRef) -> (qualifier: String?, name: String)? {
        guard ref.n_fields >= 2, let name = string(ref.fields[ref.n_fields - 1]) else { return nil }
        return (ref.n_fields == 2 ? string(ref.fields[0]) : nil, name)
    }

    /// The range names PostgreSQL gives a function in FROM — its alias, else the name of its
    /// (first) function (src/backend/parser/parse_clause.c transformRangeFunction,
    /// parse_relation.c addRangeTableEntryForFunction, parse_target.c FigureColname); every
    /// function's name for ROWS FROM — and the column names the statement gives it (an alias's
    /// column list, a column definition list), which are columns whatever the function returns.
    /// Nil when an item is neither a call nor a special form named here (`FROM cast(1 AS int)`).
    static func rangeFunction(_ range: PgQuery__RangeFunction) -> (names: [String], columns: Set<String>)? {
        var columns = Set(Self.names(range.alias?.pointee.colnames, count: range.alias?.pointee.n_colnames ?? 0))
        columns.formUnion(columnDefinitionNames(range.coldeflist, count: range.n_coldeflist))
        let alias = range.alias?.pointee.aliasname.flatMap { $0.pointee == 0 ? nil : String(cString: $0) }
        var names: [String] = alias.map { [$0] } ?? []
        for index in 0..<range.n_functions {
            // Each item is a List of (function expression, column definitions).
            guard let item = range.functions[index], item.pointee.node_case == PG_QUERY__NODE__NODE_LIST,
                  let list = item.pointee.list?.pointee, list.n_items > 0 else { return nil }
            if alias == nil {
                guard let name = figuredName(list.items[0]) else { return nil }
                names.append(name)
            }
            if list.n_items > 1, let definitions = list.items[1], definitions.pointee.node_case == PG_QUERY__NODE__NODE_LIST,
               let defined = definitions.pointee.list?.pointee {
                columns.formUnion(columnDefinitionNames(defined.items, count: defined.n_items))
            }
        }
        return (names, columns)
    }

    private static func columnDefinitionNames(_ list: UnsafeMutablePointer<UnsafeMutablePointer<PgQuery__Node>?>?, count: Int) -> [String] {
        guard let list else { return [] }
        return (0..<count).compactMap { index in
            guard let node = list[index], node.pointee.node_case == PG_QUERY__NODE__NODE_COLUMN_DEF,
                  let name = node.pointee.column_def?.pointee.colname else { return nil }
            return String(cString: name)
        }
    }

    /// FigureColname of a function in FROM, for the forms a FROM item can take that are named
    /// without looking further (parse_target.c FigureColnameInternal); nil for the others.
    private static func figuredName(_ node: UnsafeMutablePointer<PgQuery__Node>?) -> String? {
        guard let node else { return nil }
        switch node.pointee.node_case {
        case PG_QUERY__NODE__NODE_FUNC_CALL:
            guard let call = node.pointee.func_call?.pointee else { return nil }
            return names(call.funcname, count: call.n_funcname).last
        case PG_QUERY__NODE__NODE_COALESCE_EXPR:
            return "coalesce"
        case PG_QUERY__NODE__NODE_MIN_MAX_EXPR:
            return node.pointee.min_max_expr?.pointee.op == PG_QUERY__MIN_MAX_OP__IS_GREATEST ? "greatest" : "least"
        case PG_QUERY__NODE__NODE_SQLVALUE_FUNCTION:
            switch node.pointee.sqlvalue_function?.pointee.op {
            case PG_QUERY__SQLVALUE_FUNCTION_OP__SVFOP_CURRENT_DATE: return "current_date"
            case PG_QUERY__SQLVALUE_FUNCTION_OP__SVFOP_CURRENT_TIME, PG_QUERY__SQLVALUE_FUNCTION_OP__SVFOP_CURRENT_TIME_N: return "current_time"
            case PG_QUERY__SQLVALUE_FUNCTION_OP__SVFOP_CURRENT_TIMESTAMP, PG_QUERY__SQLVALUE_FUNCTION_OP__SVFOP_CURRENT_TIMESTAMP_N:
                return "current_timestamp"
            case PG_QUERY__SQLVALUE_FUNCTION_OP__SVFOP_LOCALTIME, PG_QUERY__SQLVALUE_FUNCTION_OP__SVFOP_LOCALTIME_N: return "localtime"
            case PG_QUERY__SQLVALUE_FUNCTION_OP__SVFOP_LOCALTIMESTAMP, PG_QUERY__SQLVALUE_FUNCTION_OP__SVFOP_LOCALTIMESTAMP_N:
                return "localtimestamp"
            case PG_QUERY__SQLVALUE_FUNCTION_OP__SVFOP_CURRENT_ROLE: return "current_role"
            case PG_QUERY__SQLVALUE_FUNCTION_OP__SVFOP_CURRENT_USER: return "current_user"
            case PG_QUERY__SQLVALUE_FUNCTION_OP__SVFOP_USER: return "user"
            case PG_QUERY__SQLVALUE_FUNCTION_OP__SVFOP_SESSION_USER: return "session_user"
            case PG_QUERY__SQLVALUE_FUNCTION_OP__SVFOP_CURRENT_CATALOG: return "current_catalog"
            case PG_QUERY__SQLVALUE_FUNCTION_OP__SVFOP_CURRENT_SCHEMA: return "current_schema"
            default: return nil
            }
        default:
            return nil
        }
    }

    enum Constant: Equatable {
        case string(String)
        case integer(Int)
        case boolean(Bool)
        case other
    }

    /// A bare A_Const as a Swift value. A cast is not looked through: its output can differ
    /// from the text judged (`'evil, pg_catalogue'::varchar(16)` is `evil, pg_catalog`,
    /// `'rolex'::char(4)` is `role`, `'1'::numeric(1,-1)::int::boolean` is false).
    static func plainConstant(_ node: NodePointer?) -> Constant? {
        guard let node, node.pointee.node_case == PG_QUERY__NODE__NODE_A_CONST else { return nil }
        return constant(node)
    }

    /// A bare string A_Const (``plainConstant(_:)``).
    static func plainString(_ node: NodePointer?) -> String? {
        guard case .string(let text)? = plainConstant(node) else { return nil }
        return text
    }

    /// An A_Const (possibly under a TypeCast, e.g. 'on'::text) as a Swift value; nil if not
    /// constant. For what only needs the text as written; a decision that turns on the value
    /// PostgreSQL sees takes ``plainConstant(_:)``.
    static func constant(_ node: UnsafeMutablePointer<PgQuery__Node>?) -> Constant? {
        var node = node
        // 'on'::text::text… : a loop, not recursion, however long the chain.
        while let cast = node?.pointee, cast.node_case == PG_QUERY__NODE__NODE_TYPE_CAST {
            node = cast.type_cast?.pointee.arg
        }
        guard let node else { return nil }
        switch node.pointee.node_case {
        case PG_QUERY__NODE__NODE_INTEGER:
            // Option values (EXPLAIN (ANALYZE 0)) are bare value nodes, not A_Const.
            return .integer(Int(node.pointee.integer?.pointee.ival ?? 0))
        case PG_QUERY__NODE__NODE_BOOLEAN:
            return .boolean(node.pointee.boolean?.pointee.boolval != 0)
        default:
            break
        }
        guard node.pointee.node_case == PG_QUERY__NODE__NODE_A_CONST, let aConst = node.pointee.a_const else {
            return nil
        }
        switch aConst.pointee.val_case {
        case PG_QUERY__A__CONST__VAL_SVAL:
            return .string(aConst.pointee.sval?.pointee.sval.map { String(cString: $0) } ?? "")
        case PG_QUERY__A__CONST__VAL_IVAL:
            return .integer(Int(aConst.pointee.ival?.pointee.ival ?? 0))
        case PG_QUERY__A__CONST__VAL_BOOLVAL:
            return .boolean(aConst.pointee.boolval?.pointee.boolval != 0)
        default:
            return .other
        }
    }

    /// A DefElem's boolean-ish argument as PostgreSQL's defGetBoolean reads it
    /// (src/backend/commands/define.c): absent means true.
    static func defElemBoolean(_ arg: UnsafeMutablePointer<PgQuery__Node>?) -> Bool? {
        guard let arg else { return true }
        switch constant(arg) {
        case .integer(let value): return value != 0
        case .boolean(let value): return value
        case .string(let text):
            switch text.lowercased() {
            case "true", "on", "yes", "1": return true
            case "false", "off", "no", "0": return false
            default: return nil
            }
        case .other, .none:
            // Keywords such as `ANALYZE on` arrive as a String node, not an A_Const.
            switch string(arg)?.lowercased() {
            case "true", "on", "yes": return true
            case "false", "off", "no": return false
            default: return nil
            }
        }
    }
}
