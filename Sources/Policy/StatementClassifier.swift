import CPgQuery

/// Classifies SQL with PostgreSQL 15's own parser (libpg_query) and decides, per
/// statement, whether a read-only identity may run it.
///
/// The rule is PostgreSQL's read-only transaction rule (docs 13.2, SET TRANSACTION;
/// src/backend/tcop/utility.c ClassifyUtilityCommandAsReadOnly / PreventCommandIfReadOnly),
/// tightened where a read-only transaction still lets a session change server state or
/// escape the restriction: VACUUM, ANALYZE, CLUSTER, REINDEX, CHECKPOINT, LOCK stronger
/// than ACCESS SHARE, LISTEN/NOTIFY, ALTER SYSTEM, DO, CALL, PREPARE TRANSACTION, COPY to a
/// file or program, SET of protected settings (``SettingPolicy``), and every function not on
/// ``FunctionPolicy/readSafeFunctions``. Text the parser rejects is refused (fail closed).
public struct StatementClassifier: Sendable {
    public init() {}

    public func classify(sql: String) -> ClassificationResult {
        classifyTrackingLiterals(sql: sql).result
    }

    /// Also reports whether any decision read a literal (A_Const) value — such results must
    /// not be cached under a literal-blind key (see ``CachingStatementClassifier``).
    /// `nestingChecked`: the caller already had ``ClassifierBudget`` check the text on this thread.
    func classifyTrackingLiterals(sql: String, nestingChecked: Bool = false)
        -> (result: ClassificationResult, dependsOnLiterals: Bool) {
        switch ParsedQuery.parse(sql, nestingChecked: nestingChecked) {
        case .syntaxError(let refusal):
            return (ClassificationResult(statements: [], syntaxError: refusal), false)
        case .parsed(let parsed):
            var dependsOnLiterals = false
            var afterTransactionEnd: String?
            let statements = parsed.statements.map { node in
                var decision = decide(node)
                // A statement after one that ends the transaction, in the same Query string,
                // starts a new transaction whose read-only mode comes from
                // default_transaction_read_only as the previous statements left it — before the
                // server reports it (ParameterStatus comes with ReadyForQuery), so before the
                // tripwire could see code the gate missed turn it off. Each transaction of a
                // read-only identity starts in its own Query.
                if let ended = afterTransactionEnd {
                    decision.refuse(.policy("a statement after \(ended) in the same query string"))
                }
                if Self.endsTransaction(decision.tag) { afterTransactionEnd = decision.tag }
                let session = SessionStateEffects.of(node)
                dependsOnLiterals = dependsOnLiterals || decision.dependsOnLiterals || session.readLiterals
                return StatementClassification(commandTag: decision.tag, auditClass: decision.auditClass,
                                               refusal: decision.refusal, objects: decision.objects,
                                               lookups: decision.lookups, copiesStoredRows: decision.copiesStoredRows,
                                               sessionEffects: session.effects,
                                               preparedStatementNames: session.preparedStatementNames)
            }
            return withExtendedLifetime(parsed) {
                (ClassificationResult(statements: statements, syntaxError: nil), dependsOnLiterals)
            }
        }
    }
}

extension StatementClassifier {
    /// Command tags of statements after which the server starts a new transaction
    /// (xact.c: COMMIT, END, ROLLBACK, ABORT; PREPARE TRANSACTION and the prepared-transaction
    /// commands end the current one too). ROLLBACK TO SAVEPOINT has the tag ROLLBACK as well:
    /// refusing after it too costs nothing real.
    static func endsTransaction(_ tag: String) -> Bool {
        tag == "COMMIT" || tag == "ROLLBACK" || tag == "PREPARE TRANSACTION" || tag == "COMMIT PREPARED" || tag == "ROLLBACK PREPARED"
    }
}

/// One statement's decision while it is being built.
struct Decision {
    var tag: String
    var auditClass: AuditClass
    var refusal: Refusal?
    var dependsOnLiterals = false
    /// Named relations and functions, in order of first appearance, without repeats.
    private(set) var objects: [ObjectReference] = []
    private var seenObjects: Set<ObjectReference> = []
    /// Operators, type names and attribute-notation calls, without repeats (``CatalogLookup``).
    private(set) var lookups: [CatalogLookup] = []
    /// `COPY table TO STDOUT` (no query): see ``StatementClassification/copiesStoredRows``.
    var copiesStoredRows = false
    private var seenLookups: Set<CatalogLookup> = []

    init(tag: String, auditClass: AuditClass, refusal: Refusal? = nil, dependsOnLiterals: Bool = false) {
        self.tag = tag
        self.auditClass = auditClass
        self.refusal = refusal
        self.dependsOnLiterals = dependsOnLiterals
    }

    mutating func refuse(_ refusal: Refusal) {
        if self.refusal == nil { self.refusal = refusal }
    }

    mutating func record(_ object: ObjectReference) {
        if seenObjects.insert(object).inserted { objects.append(object) }
    }

    mutating func record(_ lookup: CatalogLookup) {
        if seenLookups.insert(lookup).inserted { lookups.append(lookup) }
    }

    mutating func adopt(_ inner: Decision) {
        if let refusal = inner.refusal { refuse(refusal) }
        dependsOnLiterals = dependsOnLiterals || inner.dependsOnLiterals
        for object in inner.objects { record(object) }
        for lookup in inner.lookups { record(lookup) }
    }
}

typealias NodePointer = UnsafeMutablePointer<PgQuery__Node>

extension StatementClassifier {
    /// Decides one statement: first by its own kind, then by everything nested in it.
    func decide(_ node: NodePointer) -> Decision {
        var decision = decideKind(node)
        // Statements whose inner query was decided on its own (EXPLAIN ANALYZE, PREPARE,
        // DECLARE, COPY (query)) must not be scanned again under the outer tag.
        let innerQuery: NodePointer? = switch node.pointee.node_case {
        case PG_QUERY__NODE__NODE_EXPLAIN_STMT: node.pointee.explain_stmt.pointee.query
        case PG_QUERY__NODE__NODE_PREPARE_STMT: node.pointee.prepare_stmt.pointee.query
        case PG_QUERY__NODE__NODE_DECLARE_CURSOR_STMT: node.pointee.declare_cursor_stmt.pointee.query
        case PG_QUERY__NODE__NODE_COPY_STMT: node.pointee.copy_stmt.pointee.query
        default: nil
        }
        var scan = TreeScan(writeTag: decision.tag, skipping: innerQuery.flatMap(Self.message(of:)),
                            ignoresWrites: false, root: node,
                            namedRelationsAreWritten: Self.namesRelationsToChange(node))
        scan.scan(node)
        decision.adopt(scan.decision)
        // A statement classed READ that runs a nested INSERT, UPDATE, DELETE or MERGE (a
        // data-modifying WITH, docs: Queries, 7.8.4 "Data-Modifying Statements in WITH") writes:
        // its audit class is WRITE, so `audit_classes = write` keeps it. pgAudit classes it by
        // its top-level command (READ,SELECT): a deliberate difference (docs/AUDIT.md). Only
        // the class changes; the refusal is the scan's, as before.
        if scan.runsNestedWrite && decision.auditClass == .read { decision.auditClass = .write }
        return decision
    }

    /// The message a Node wraps (its set `oneof` member).
    static func message(of node: NodePointer) -> UnsafeRawPointer? {
        guard let field = protobuf_c_message_descriptor_get_field(cpq_node_descriptor(),
                                                                   node.pointee.node_case.rawValue)
        else { return nil }
        return UnsafeRawPointer(node).load(fromByteOffset: Int(field.pointee.offset), as: UnsafeRawPointer?.self)
    }
}

/// Walks a whole statement for what makes it write even when its top-level kind reads:
/// data-modifying statements nested in WITH, SELECT INTO, SELECT ... FOR UPDATE/SHARE,
/// and function calls (deny by default).
struct TreeScan {
    var decision: Decision
    let skipping: UnsafeRawPointer?
    /// Plain EXPLAIN plans but does not run its statement, so nested writes are harmless;
    /// function calls are still checked (the planner may evaluate some).
    let ignoresWrites: Bool
    /// The statement's own top-level SELECT, the only place pg_dump's pinned
    /// `set_config(name, ...) FROM pg_settings` shape is recognised (``PinnedSettingName``).
    let rootSelect: UnsafeRawPointer?
    /// set_config calls of `rootSelect` whose setting name is pinned by its WHERE clause.
    var pinnedSetConfigCalls: [UnsafeRawPointer: String] = [:]
    /// RangeVars the statement writes (INSERT/UPDATE/DELETE/MERGE/TRUNCATE/COPY FROM/INTO targets).
    var writeTargets: Set<UnsafeRawPointer> = []
    /// For utility statements: RangeVars outside any query are the objects the command changes.
    let namedRelationsAreWritten: Bool
    /// RangeVars (and SelectStmts) inside queries of such a utility statement: read.
    var queryRelations: Set<UnsafeRawPointer> = []
    /// An INSERT, UPDATE, DELETE or MERGE was met where it runs (not under a plain EXPLAIN):
    /// the statement writes whatever its top-level kind.
    var runsNestedWrite = false
    /// `t.f` column references, judged after the walk (``recordRowAttributes()``).
    var columnRefFields: [(qualifier: String?, name: String)] = []
    /// Functions in FROM by range name, each with the column names the statement gives it;
    /// nil once one's name could not be worked out.
    var functionRanges: [String: [Set<String>]]? = [:]

    init(writeTag: String, skipping: UnsafeRawPointer?, ignoresWrites: Bool, root: NodePointer? = nil,
         namedRelationsAreWritten: Bool = false) {
        decision = Decision(tag: writeTag, auditClass: .read)
        self.skipping = skipping
        self.ignoresWrites = ignoresWrites
        self.namedRelationsAreWritten = namedRelationsAreWritten
        rootSelect = root.flatMap { $0.pointee.node_case == PG_QUERY__NODE__NODE_SELECT_STMT ? $0.pointee.select_stmt : nil }
            .map { UnsafeRawPointer($0) }
    }

    mutating func scan(_ node: NodePointer) {
        ParseTreeWalker.walk(UnsafeRawPointer(node)) { nodeCase, message in
            self.visit(nodeCase, message)
        }
        recordRowAttributes()
    }

    static func writeTag(_ nodeCase: PgQuery__Node__NodeCase) -> String {
        switch nodeCase {
        case PG_QUERY__NODE__NODE_INSERT_STMT: "INSERT"
        case PG_QUERY__NODE__NODE_UPDATE_STMT: "UPDATE"
        case PG_QUERY__NODE__NODE_DELETE_STMT: "DELETE"
        default: "MERGE"
        }
    }

    mutating func visit(_ nodeCase: PgQuery__Node__NodeCase, _ message: UnsafeRawPointer) -> Bool {
        if message == skipping { return false }
        noteObjects(nodeCase, message)
        switch nodeCase {
        case PG_QUERY__NODE__NODE_INSERT_STMT, PG_QUERY__NODE__NODE_UPDATE_STMT,
             PG_QUERY__NODE__NODE_DELETE_STMT, PG_QUERY__NODE__NODE_MERGE_STMT:
            // PostgreSQL names the outer statement: "cannot execute SELECT in a read-only
            // transaction" for WITH x AS (INSERT ...) SELECT (ExecCheckXactReadOnly). Under a
            // plain EXPLAIN too, wherever it is: planning the write folds its target's column
            // defaults and ON CONFLICT's arbiter index expressions (found in review).
            if ignoresWrites {
                decision.refuse(.readOnly(Self.writeTag(nodeCase)))
            } else {
                decision.refuse(.readOnly(decision.tag))
                runsNestedWrite = true
            }
        case PG_QUERY__NODE__NODE_SELECT_STMT:
            let select = message.assumingMemoryBound(to: PgQuery__SelectStmt.self)
            if message == rootSelect { pinnedSetConfigCalls = PinnedSettingName.calls(in: select) }
            if ignoresWrites { break }
            if select.pointee.into_clause != nil { decision.refuse(.readOnly("SELECT INTO")) }
            if let tag = Self.lockingTag(select) { decision.refuse(.readOnly(tag)) }
        case PG_QUERY__NODE__NODE_FUNC_CALL:
            checkFunction(message.assumingMemoryBound(to: PgQuery__FuncCall.self))
        case PG_QUERY__NODE__NODE_COLUMN_REF, PG_QUERY__NODE__NODE_A_INDIRECTION:
            for name in NodeValue.attributeNames(nodeCase, message) { checkAttributeFunction(name) }
        case PG_QUERY__NODE__NODE_A_EXPR:
            // OPERATOR(schema.op) runs that schema's operator function; only pg_catalog's
            // are known. (Unqualified operators resolve through search_path, which
            // SettingPolicy keeps pg_catalog-first.)
            let expr = message.assumingMemoryBound(to: PgQuery__AExpr.self)
            let names = NodeValue.names(expr.pointee.name, count: expr.pointee.n_name)
            if names.count > 1 && names[0] != "pg_catalog" {
                decision.refuse(.policy("operator \(names.joined(separator: "."))"))
            }
        default:
            break
        }
        return true
    }

    /// PostgreSQL's tag for a locking SELECT (CreateCommandTag, strongest clause wins).
    static func lockingTag(_ select: UnsafePointer<PgQuery__SelectStmt>) -> String? {
        var strongest: UInt32 = 0
        for index in 0..<select.pointee.n_locking_clause {
            guard let node = select.pointee.locking_clause[index],
                  node.pointee.node_case == PG_QUERY__NODE__NODE_LOCKING_CLAUSE,
                  let clause = node.pointee.locking_clause else { continue }
            strongest = max(strongest, clause.pointee.strength.rawValue)
        }
        switch PgQuery__LockClauseStrength(rawValue: strongest) {
        case PG_QUERY__LOCK_CLAUSE_STRENGTH__LCS_FORUPDATE: return "SELECT FOR UPDATE"
        case PG_QUERY__LOCK_CLAUSE_STRENGTH__LCS_FORNOKEYUPDATE: return "SELECT FOR NO KEY UPDATE"
        case PG_QUERY__LOCK_CLAUSE_STRENGTH__LCS_FORSHARE: return "SELECT FOR SHARE"
        case PG_QUERY__LOCK_CLAUSE_STRENGTH__LCS_FORKEYSHARE: return "SELECT FOR KEY SHARE"
        default: return nil
        }
    }

    /// A field selection whose name is a built-in function that is not read-safe: PostgreSQL
    /// calls the function when no field of that name exists (``FunctionPolicy/attributeRefusedNames``).
    mutating func checkAttributeFunction(_ name: String) {
        guard FunctionPolicy.attributeRefusedNames.contains(name) else { return }
        if FunctionPolicy.postgresReadOnlyRefused.contains(name) {
            decision.refuse(.readOnly("\(name)()"))
        } else {
            decision.refuse(.policy("function \(name)() (attribute notation .\(name))"))
        }
    }

    mutating func checkFunction(_ call: UnsafePointer<PgQuery__FuncCall>) {
        let names = NodeValue.names(call.pointee.funcname, count: call.pointee.n_funcname)
        guard let name = names.last else {
            decision.refuse(.policy("calling an unnamed function"))
            return
        }
        let qualified = names.joined(separator: ".")
        if names.count > 2 || (names.count == 2 && names[0] != "pg_catalog") {
            decision.refuse(.policy("function \(qualified)()"))
            return
        }
        if FunctionPolicy.postgresReadOnlyRefused.contains(name) {
            // sequence.c: "cannot execute nextval() in a read-only transaction"
            decision.refuse(.readOnly("\(name)()"))
            return
        }
        if name == "set_config" {
            checkSetConfig(call)
            return
        }
        if name == "lo_open" {
            checkLargeObjectOpen(call)
            return
        }
        if !FunctionPolicy.readSafeFunctions.contains(name) {
            decision.refuse(.policy("function \(qualified)()"))
        }
    }
}
