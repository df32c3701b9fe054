import CPgQuery

/// Collecting ``ObjectReference``s while ``TreeScan`` walks a statement. The walk visits a
/// parent before its children, so a statement marks its targets as written before their
/// RangeVars are reached.
extension TreeScan {
    mutating func noteObjects(_ nodeCase: PgQuery__Node__NodeCase, _ message: UnsafeRawPointer) {
        switch nodeCase {
        case PG_QUERY__NODE__NODE_INSERT_STMT:
            markWritten(message.assumingMemoryBound(to: PgQuery__InsertStmt.self).pointee.relation)
        case PG_QUERY__NODE__NODE_UPDATE_STMT:
            markWritten(message.assumingMemoryBound(to: PgQuery__UpdateStmt.self).pointee.relation)
        case PG_QUERY__NODE__NODE_DELETE_STMT:
            markWritten(message.assumingMemoryBound(to: PgQuery__DeleteStmt.self).pointee.relation)
        case PG_QUERY__NODE__NODE_MERGE_STMT:
            markWritten(message.assumingMemoryBound(to: PgQuery__MergeStmt.self).pointee.relation)
        case PG_QUERY__NODE__NODE_TRUNCATE_STMT:
            let truncate = message.assumingMemoryBound(to: PgQuery__TruncateStmt.self).pointee
            for index in 0..<truncate.n_relations {
                if let node = truncate.relations[index], node.pointee.node_case == PG_QUERY__NODE__NODE_RANGE_VAR {
                    markWritten(node.pointee.range_var)
                }
            }
        case PG_QUERY__NODE__NODE_COPY_STMT:
            let copy = message.assumingMemoryBound(to: PgQuery__CopyStmt.self).pointee
            if copy.is_from != 0 { markWritten(copy.relation) }
        case PG_QUERY__NODE__NODE_CREATE_TABLE_AS_STMT:
            markWritten(message.assumingMemoryBound(to: PgQuery__CreateTableAsStmt.self).pointee.into?.pointee.rel)
        case PG_QUERY__NODE__NODE_SELECT_STMT:
            let select = message.assumingMemoryBound(to: PgQuery__SelectStmt.self)
            markWritten(select.pointee.into_clause?.pointee.rel)
            if namedRelationsAreWritten && !queryRelations.contains(message) { collectQueryRelations(message) }
        case PG_QUERY__NODE__NODE_RANGE_VAR:
            let range = message.assumingMemoryBound(to: PgQuery__RangeVar.self)
            recordRelation(range)
            // `FROM system_user` is a relation to PostgreSQL 15's grammar and a function
            // returning text to 16's (gram.y func_expr_common_subexpr SYSTEM_USER): `s.f`
            // would call f(text) on a newer server (found in review).
            if range.pointee.schemaname.map({ $0.pointee == 0 }) ?? true,
               range.pointee.relname.map({ String(cString: $0) }) == "system_user" {
                let alias = range.pointee.alias?.pointee.aliasname.flatMap { $0.pointee == 0 ? nil : String(cString: $0) }
                functionRanges?[alias ?? "system_user", default: []].append([])
            }
        case PG_QUERY__NODE__NODE_FUNC_CALL:
            let call = message.assumingMemoryBound(to: PgQuery__FuncCall.self)
            let names = NodeValue.names(call.pointee.funcname, count: call.pointee.n_funcname)
            if let name = names.last {
                decision.record(ObjectReference(kind: .function, schema: names.count > 1 ? names[names.count - 2] : nil,
                                                name: name, access: .call))
            }
        default:
            noteLookups(nodeCase, message)
        }
    }

    /// ``CatalogLookup``s: operators (written or implied), type names, attribute notation.
    private mutating func noteLookups(_ nodeCase: PgQuery__Node__NodeCase, _ message: UnsafeRawPointer) {
        switch nodeCase {
        case PG_QUERY__NODE__NODE_A_EXPR:
            let expr = message.assumingMemoryBound(to: PgQuery__AExpr.self).pointee
            let names = NodeValue.names(expr.name, count: expr.n_name)
            switch expr.kind {
            // transformAExprBetween (src/backend/parser/parse_expr.c) rewrites BETWEEN into
            // `>=`/`<=` and NOT BETWEEN into `<`/`>`, looked up by name like any operator.
            case PG_QUERY__A__EXPR__KIND__AEXPR_BETWEEN, PG_QUERY__A__EXPR__KIND__AEXPR_BETWEEN_SYM:
                recordOperators([">="], ["<="])
            case PG_QUERY__A__EXPR__KIND__AEXPR_NOT_BETWEEN, PG_QUERY__A__EXPR__KIND__AEXPR_NOT_BETWEEN_SYM:
                recordOperators(["<"], [">"])
            default:
                // IN, NULLIF, IS DISTINCT FROM carry "=" / "<>", LIKE "~~", SIMILAR "~".
                recordOperators(names)
            }
        case PG_QUERY__NODE__NODE_SUB_LINK:
            // `x IN (subquery)` is an ANY sublink without operName; transformSubLink uses "=".
            let link = message.assumingMemoryBound(to: PgQuery__SubLink.self).pointee
            if link.sub_link_type == PG_QUERY__SUB_LINK_TYPE__ANY_SUBLINK && link.n_oper_name == 0 {
                recordOperators(["="])
            }
            recordOperators(NodeValue.names(link.oper_name, count: link.n_oper_name))
        case PG_QUERY__NODE__NODE_SORT_BY:
            let sort = message.assumingMemoryBound(to: PgQuery__SortBy.self).pointee
            recordOperators(NodeValue.names(sort.use_op, count: sort.n_use_op))
        case PG_QUERY__NODE__NODE_JOIN_EXPR:
            // transformJoinUsingClause builds `l = r` per USING / NATURAL column.
            let join = message.assumingMemoryBound(to: PgQuery__JoinExpr.self).pointee
            if join.is_natural != 0 || join.n_using_clause > 0 { recordOperators(["="]) }
        case PG_QUERY__NODE__NODE_CASE_EXPR:
            // transformCaseExpr compares `CASE x WHEN y` with an unqualified "=".
            if message.assumingMemoryBound(to: PgQuery__CaseExpr.self).pointee.arg != nil { recordOperators(["="]) }
        case PG_QUERY__NODE__NODE_TYPE_NAME:
            let type = message.assumingMemoryBound(to: PgQuery__TypeName.self).pointee
            let names = NodeValue.names(type.names, count: type.n_names)
            if let name = names.last {
                decision.record(CatalogLookup(kind: .type, schema: names.count > 1 ? names[names.count - 2] : nil, name: name))
            }
        case PG_QUERY__NODE__NODE_COLUMN_REF:
            // Judged once the whole statement is walked: what its qualifier names (``recordRowAttributes()``).
            if let field = NodeValue.columnRefAttribute(message.assumingMemoryBound(to: PgQuery__ColumnRef.self).pointee) {
                columnRefFields.append(field)
            }
        case PG_QUERY__NODE__NODE_A_INDIRECTION:
            for name in NodeValue.attributeNames(nodeCase, message) {
                decision.record(CatalogLookup(kind: .attributeFunction, schema: nil, name: name))
            }
        case PG_QUERY__NODE__NODE_RANGE_FUNCTION:
            if let range = NodeValue.rangeFunction(message.assumingMemoryBound(to: PgQuery__RangeFunction.self).pointee) {
                for name in range.names { functionRanges?[name, default: []].append(range.columns) }
            } else {
                functionRanges = nil
            }
        default:
            break
        }
    }

    /// `t.f` with t a relation, a subquery, a join, VALUES or a CTE passes f a whole row (a
    /// composite type or `record`): a ``CatalogLookup/Kind/rowAttribute``. With t possibly a
    /// function in FROM (a scalar whole row, `g.f` for `generate_series(1, 3) g`) that the
    /// statement does not give a column f, or a FROM item not named here, any argument type: an
    /// ``CatalogLookup/Kind/attributeFunction``. The names are the statement's, at any level: a
    /// superset of what is in scope.
    mutating func recordRowAttributes() {
        for field in columnRefFields {
            var scalar = false
            if let qualifier = field.qualifier {
                if let ranges = functionRanges {
                    scalar = ranges[qualifier]?.contains { !$0.contains(field.name) } ?? false
                } else {
                    scalar = true
                }
            }
            decision.record(CatalogLookup(kind: scalar ? .attributeFunction : .rowAttribute, schema: nil, name: field.name))
        }
        columnRefFields = []
    }

    private mutating func recordOperators(_ names: [String]...) {
        for name in names {
            guard let symbol = name.last else { continue }
            decision.record(CatalogLookup(kind: .operator, schema: name.count > 1 ? name[name.count - 2] : nil, name: symbol))
        }
    }

    private mutating func markWritten(_ rangeVar: UnsafeMutablePointer<PgQuery__RangeVar>?) {
        if let rangeVar { writeTargets.insert(UnsafeRawPointer(rangeVar)) }
    }

    private mutating func recordRelation(_ rangeVar: UnsafePointer<PgQuery__RangeVar>) {
        guard let relname = rangeVar.pointee.relname, relname.pointee != 0 else { return }
        let pointer = UnsafeRawPointer(rangeVar)
        let written = writeTargets.contains(pointer) || (namedRelationsAreWritten && !queryRelations.contains(pointer))
        let schema = rangeVar.pointee.schemaname.flatMap { $0.pointee == 0 ? nil : String(cString: $0) }
        decision.record(ObjectReference(kind: .relation, schema: schema, name: String(cString: relname),
                                        access: written ? .write : .read))
    }

    /// Marks every RangeVar and SelectStmt under `select` as part of a query.
    private mutating func collectQueryRelations(_ select: UnsafeRawPointer) {
        queryRelations.insert(select)
        var found: [UnsafeRawPointer] = []
        ParseTreeWalker.walk(select) { nodeCase, child in
            if nodeCase == PG_QUERY__NODE__NODE_RANGE_VAR || nodeCase == PG_QUERY__NODE__NODE_SELECT_STMT {
                found.append(child)
            }
            return true
        }
        queryRelations.formUnion(found)
    }
}

extension StatementClassifier {
    /// True for utility statements whose RangeVars outside a query name what the command
    /// changes (ALTER TABLE, GRANT, VACUUM, REFRESH, CREATE VIEW's name, ...). Queries and
    /// DML mark their targets themselves; LOCK and COPY TO read.
    static func namesRelationsToChange(_ node: NodePointer) -> Bool {
        switch node.pointee.node_case {
        case PG_QUERY__NODE__NODE_SELECT_STMT, PG_QUERY__NODE__NODE_INSERT_STMT, PG_QUERY__NODE__NODE_UPDATE_STMT,
             PG_QUERY__NODE__NODE_DELETE_STMT, PG_QUERY__NODE__NODE_MERGE_STMT, PG_QUERY__NODE__NODE_EXPLAIN_STMT,
             PG_QUERY__NODE__NODE_COPY_STMT, PG_QUERY__NODE__NODE_LOCK_STMT, PG_QUERY__NODE__NODE_DECLARE_CURSOR_STMT,
             PG_QUERY__NODE__NODE_PREPARE_STMT:
            return false
        default:
            return true
        }
    }
}
