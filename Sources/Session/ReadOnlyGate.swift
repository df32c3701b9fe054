import Wire
import Policy

/// Enforces the statement policy of a read-only identity on its session's message stream.
/// Pure: frontend messages and server errors in, verdicts out.
///
/// A refused statement is not answered by the proxy. It is replaced by a *stand-in* the
/// server must fail at the same point — `SELECT '<marker>'::pg_catalog.int4`, which fails
/// during parse analysis (22P02) — and the server's error is then rewritten into the refusal.
/// So everything that follows an error is PostgreSQL's own, byte for byte: in a simple Query,
/// the statements before the refused one run and the rest are skipped (docs 55.2.2 Simple
/// Query, "Multiple Statements in a Simple Query"); in the extended protocol the server
/// discards messages until Sync (55.2.3, Extended Query); an open transaction block is
/// aborted, later statements get 25P02, and ReadyForQuery carries the status the server
/// really has. Replies to messages sent before the refused one arrive first, in order.
///
/// Each stand-in carries a fresh random token (`tokens`, 128 bits in the shell), matched once
/// and then forgotten. A token is only ever valid while its own stand-in is in flight, and only
/// in this session, so seeing one anywhere — an error, `pg_stat_activity` of another session —
/// teaches nothing that could make a client's own error look like a refusal. An aborted
/// transaction's 25P02 (which the stand-in also gets) passes through unchanged, exactly as
/// PostgreSQL would answer.
///
/// Pending refusals are never dropped while their stand-in may still fail: a stand-in that
/// fails always comes back as its refusal. The gate holds at most ``maxPending`` of them by
/// contract with its shell, which stops feeding client messages while ``isAtPendingBound``
/// and resumes as server replies resolve them (backpressure).
package struct ReadOnlyGate {
    package enum ClientVerdict: Equatable {
        case forward
        /// Send these bytes (one whole frame) in place of the client's message.
        case replace(ByteBuffer)
    }

    /// Client message types the gate must see whole: Query, Parse, FunctionCall, and Sync
    /// (to count the batches that each end in one ReadyForQuery).
    package static let inspectedClientTypes: Set<UInt8> = [
        UInt8(ascii: "Q"), UInt8(ascii: "P"), UInt8(ascii: "F"), UInt8(ascii: "S"),
    ]

    package struct PendingRefusal {
        package let token: String
        /// The ReadyForQuery (counted from the session start) that closes the batch holding
        /// the stand-in: once it arrived, the stand-in either failed or never ran.
        package let batch: UInt64
        package let refusal: Refusal
        /// The stand-in is a whole Query and its refusal one PostgreSQL raises before it checks
        /// for an aborted transaction block (raw parsing, encoding): in such a block the
        /// stand-in fails with 25P02 instead, which the refusal replaces (found in review: a
        /// syntax error in an aborted block answered 25P02 where PostgreSQL says 42601).
        package var precedesAbortCheck = false
    }

    package let identity: String
    package static let markerPrefix = "portcullis-refused-"
    /// A fresh unpredictable token per refusal (hex digits and letters only).
    private let tokens: () -> String
    private var pending: [PendingRefusal] = []
    /// Numbers batches: a Query, FunctionCall or Sync ends the one being sent.
    private var batchesSent: UInt64 = 0
    /// The batches sent whose ReadyForQuery has not come, oldest first. Not a count: after an
    /// extended-protocol error the server skips every message up to Sync, a Query or
    /// FunctionCall among them, which then gets no ReadyForQuery (found in review: a counter
    /// fell one behind for the rest of the session, so a skipped Close was taken as done and a
    /// 42P05 Parse as a new definition).
    private var ends = FIFOQueue<(batch: UInt64, isSync: Bool)>()
    /// An extended-protocol error came and no Sync has been sent since: the server skips what
    /// the client sends until its Sync, Queries and FunctionCalls included.
    private var skippingToSync = false
    /// A batch in which the server already reported an error: it skips the rest of that batch
    /// (simple Query: the rest of the string; extended protocol: everything up to Sync, 55.2.3),
    /// so stand-ins later in it never run and need no pending entry.
    private var failedBatch: UInt64?
    /// Refusals awaiting their error that the shell lets the gate hold: at this many it stops
    /// feeding client messages until replies resolve some. Never exceeded by dropping.
    package static let maxPending = 256

    /// Whether FunctionCall is judged (``FastPathPolicy``); false for a gate that only refuses
    /// what transaction pooling cannot carry (`transaction_pin = refuse` of a read-write identity).
    package let judgesFunctionCalls: Bool
    /// A read-only gate's prepared statement texts, judged again at each Bind (``PreparedTexts``).
    private var preparedTexts: PreparedTexts
    /// Portals whose statement runs its query only at Execute (a utility: EXPLAIN ANALYZE,
    /// COPY (query) TO, DECLARE CURSOR), with the texts their Bind was judged against; others
    /// are kept with an empty text (``portalBound(_:runsAtExecute:)``).
    private var portalTexts = PreparedTexts()
    /// Whether a portal was ever bound to a statement that runs at Execute. Until then every
    /// portal's text is empty, as a portal never bound has none, so nothing is kept (most
    /// sessions bind only plain SELECTs: no bookkeeping per Bind, Execute and ReadyForQuery).
    private var portalsRunAtExecute = false

    package init(identity: String, tokens: @escaping () -> String, judgesFunctionCalls: Bool = true,
                 keptTexts: KeptTextBudget? = nil) {
        self.identity = identity
        self.tokens = tokens
        self.judgesFunctionCalls = judgesFunctionCalls
        preparedTexts = PreparedTexts(budget: keptTexts)
    }

    /// The session ends: its prepared statement texts no longer count (``KeptTextBudget``).
    package mutating func releaseKeptTexts() {
        preparedTexts.releaseShare()
    }

    package var pendingCount: Int { pending.count }

    /// The shell must not pass further client messages until replies resolve pending refusals.
    package var isAtPendingBound: Bool { pending.count >= Self.maxPending }

    /// The SQL text of a message the gate judges by its classification (Query, Parse): the shell
    /// classifies it — at once on a cache hit, else off the loop — and then calls
    /// ``clientMessageReceived(_:textIsUTF8:classification:)``.
    package static func sqlText(of message: FrontendMessage) -> String? {
        switch message {
        case .query(let sql): sql
        case .parse(_, let sql, _): sql
        default: nil
        }
    }

    // MARK: Client messages

    /// Classifies in place with `classifier` (tests, tools) and judges the message.
    /// - Parameter textIsUTF8: whether the message's SQL text bytes are valid UTF-8; the text
    ///   is judged as UTF-8, so other bytes are refused as PostgreSQL refuses them in a UTF8
    ///   client encoding (22021) — fail closed for other client encodings.
    /// - Parameter catalog: the upstream database's relations that must not be read
    ///   (``CatalogSnapshot``).
    package mutating func clientMessageReceived(_ message: FrontendMessage, textIsUTF8: Bool = true,
                                        classifier: inout CachingStatementClassifier,
                                        catalog: CatalogSnapshot = .empty) -> ClientVerdict {
        let classification = textIsUTF8 ? Self.sqlText(of: message).map { classifier.classify(sql: $0, catalog: catalog) } : nil
        var offsets: [Int]?
        if case .query(let sql) = message, let classification, Self.keepsStatementsBefore(classification) {
            offsets = StatementSplitter.statementOffsets(sql)
        }
        var typed: Refusal?
        if case .parse(_, _, let parameterTypes) = message { typed = catalog.refusal(forParameterTypes: parameterTypes) }
        return clientMessageReceived(message, textIsUTF8: textIsUTF8, classification: classification, statementOffsets: offsets,
                                     parameterTypesRefusal: typed)
    }

    /// Whether a Query with this classification keeps the allowed statements before its first
    /// refused one — and so needs ``StatementSplitter/statementOffsets(_:)`` of its text, a parse
    /// the shell runs off the loop. `refusing`: what the session's gate refuses (default: a
    /// read-only gate's).
    package static func keepsStatementsBefore(_ result: ClassificationResult,
                                              refusing: StatementRefusals = .readOnly) -> Bool {
        guard result.syntaxError == nil, let index = result.statements.firstIndex(where: refusing.refuses) else {
            return false
        }
        return index > 0
    }

    /// Judges a message. `classification` is the text's classification (catalog applied) for
    /// Query and Parse (``sqlText(of:)``), or ``refusing(_:)`` for a text refused as a whole
    /// without classifying it (too long, out of time); ignored for other messages.
    /// `statementOffsets`: where a Query's statements start, when ``keepsStatementsBefore(_:)``;
    /// without them the whole string is replaced (fail closed).
    package mutating func clientMessageReceived(_ message: FrontendMessage, textIsUTF8: Bool = true,
                                        classification: ClassificationResult?,
                                        statementOffsets: [Int]? = nil,
                                        parameterTypesRefusal: Refusal? = nil) -> ClientVerdict {
        // A missing classification fails closed.
        let result = classification ?? Self.refusing(Self.unclassified)
        switch message {
        case .query(let sql):
            defer { batchEnded(isSync: false) }
            guard textIsUTF8 else { return standInQuery(kept: "", for: Self.invalidEncoding) }
            notePreparedStatements(result, text: sql, certain: true)
            return queryReceived(message, result, offsets: statementOffsets)
        case .parse(let name, let sql, let parameterTypes):
            guard textIsUTF8 else { return standInParse(name: name, for: Self.invalidEncoding) }
            let text = PreparedTexts.Text(sql: sql, parameterTypes: parameterTypes)
            if judgesFunctionCalls, !name.isEmpty, result.firstRefusal == nil, !preparedTexts.processBoundAllows(text.bytes) {
                // Never forwarded: a statement the gate could not judge again at its Binds.
                return standInParse(name: name, for: Self.keptTextsExhausted)
            }
            let verdict = parseReceived(name: name, result, parameterTypesRefusal: parameterTypesRefusal)
            // A PREPARE in a prepared statement defines its name when it runs, if ever.
            notePreparedStatements(result, text: sql, certain: false)
            if case .forward = verdict, judgesFunctionCalls {
                // Keyed by its bytes as PostgreSQL keys it (a longer name is cut at 63 bytes).
                preparedTexts.defined(.init(Array(name.utf8)), text, inBatch: batchesSent)
            }
            return verdict
        case .functionCall(let call):
            defer { batchEnded(isSync: false) }
            guard judgesFunctionCalls else { return .forward }
            guard let refusal = FastPathPolicy.refusal(functionOID: call.functionOID,
                                                       argumentFormats: call.argumentFormats,
                                                       arguments: call.arguments) else { return .forward }
            return .replace(standInFunctionCall(for: refusal))
        case .sync:
            batchEnded(isSync: true)
            return .forward
        case .bind, .execute, .describe, .close, .flush, .terminate, .copyData, .copyDone, .copyFail,
             .passwordMessage, .saslInitialResponse, .saslResponse:
            return .forward
        }
    }

    // MARK: Prepared statements judged again

    /// SQL-level PREPARE and DEALLOCATE of a name (prepare.c keeps them in one hash table with
    /// the protocol's statements): the name stands for the text it came in, judged again as a
    /// whole wherever the name is executed. `certain`: the text runs now (a Query), so its
    /// batch's outcome tells whether it did; otherwise (a Parse) the text is only added.
    private mutating func notePreparedStatements(_ result: ClassificationResult, text: String, certain: Bool) {
        guard judgesFunctionCalls, result.syntaxError == nil else { return }
        for statement in result.statements {
            for name in statement.preparedStatementNames {
                let key = SessionMachine.StatementName(Array(name.utf8))
                switch statement.commandTag {
                case "PREPARE": preparedTexts.defined(key, .init(sql: text, parameterTypes: []), inBatch: batchesSent, certain: certain)
                case "DEALLOCATE" where certain: preparedTexts.closed(key, inBatch: batchesSent)
                default: break
                }
            }
        }
    }

    /// The prepared statements a classified text runs: EXECUTE, also under EXPLAIN or CREATE
    /// TABLE AS (``StatementClassification/preparedStatementNames`` but PREPARE's and
    /// DEALLOCATE's).
    package static func executedStatements(_ result: ClassificationResult) -> [SessionMachine.StatementName] {
        result.statements.flatMap { statement -> [SessionMachine.StatementName] in
            switch statement.commandTag {
            case "PREPARE", "DEALLOCATE", "DEALLOCATE ALL": []
            default: statement.preparedStatementNames.map { SessionMachine.StatementName(Array($0.utf8)) }
            }
        }
    }

    /// A Close of statement `name` (protocol 55.7, Close 'S').
    package mutating func statementCloseReceived(_ name: SessionMachine.StatementName) {
        guard judgesFunctionCalls else { return }
        preparedTexts.closed(name, inBatch: batchesSent)
    }

    /// The texts a Bind of statement `name` must be judged against, again, with the catalog
    /// as it is now (``PreparedTexts``): nil when they were dropped for the bound (refuse it:
    /// ``preparedTextsLost(_:)``), empty when none is known (the gate's other checks decide;
    /// PostgreSQL answers 26000).
    package func bindCandidates(_ name: SessionMachine.StatementName) -> [(sql: String, parameterTypes: [Int32])]? {
        guard judgesFunctionCalls else { return [] }
        guard let candidates = preparedTexts.candidates(name, inBatch: batchesSent),
              candidates.count <= PreparedTexts.maxTextsPerName else { return nil }
        return candidates.map { ($0.sql, $0.parameterTypes) }
    }

    /// A Bind of a name no Parse or PREPARE of this session defined: PostgreSQL's answer
    /// (postgres.c exec_bind_message, FetchPreparedStatement), given by the gate, so a name the
    /// gate has no text for is never run (fail closed), whatever the server holds.
    package static func unknownStatement(_ name: String) -> Refusal {
        Refusal(sqlState: "26000", message: name.isEmpty ? "unnamed prepared statement does not exist"
                    : "prepared statement \"\(name)\" does not exist", isPostgreSQLText: true)
    }

    /// A PREPARE in a statement text that runs now (a Bind or Execute of it): the name it
    /// defines may stand for that text from now on.
    package mutating func preparesMayRun(_ result: ClassificationResult, text: String) {
        notePreparedStatements(result, text: text, certain: false)
    }

    /// A Bind the gate let through, of portal `portal`: `runsAtExecute` is the text of the
    /// statements it was judged against when one of them runs its query only at Execute
    /// (PostgreSQL's PortalStart starts the executor of a plain SELECT at Bind, but a utility
    /// statement's at Execute: pquery.c ChoosePortalStrategy, PORTAL_UTIL_SELECT and
    /// PORTAL_MULTI_QUERY; COPY (query) even analyses its query then, copy.c DoCopy), else nil.
    /// Such a portal is judged again at each Execute.
    package mutating func portalBound(_ portal: SessionMachine.StatementName, runsAtExecute: String?) {
        guard judgesFunctionCalls, runsAtExecute != nil || portalsRunAtExecute else { return }
        portalsRunAtExecute = true
        portalTexts.defined(portal, .init(sql: runsAtExecute ?? "", parameterTypes: []), inBatch: batchesSent)
    }

    /// A Close of portal `name`.
    package mutating func portalCloseReceived(_ name: SessionMachine.StatementName) {
        guard judgesFunctionCalls, portalsRunAtExecute else { return }
        portalTexts.closed(name, inBatch: batchesSent)
    }

    /// The texts an Execute of `portal` must be judged against again (empty: none, as for a
    /// plain SELECT; nil: lost, refuse it).
    package func executeCandidates(_ portal: SessionMachine.StatementName) -> [String]? {
        guard judgesFunctionCalls, portalsRunAtExecute else { return [] }
        return portalTexts.candidates(portal, inBatch: batchesSent)?.map(\.sql).filter { !$0.isEmpty }
    }

    package static func preparedTextsLost(_ name: String) -> Refusal {
        Refusal(sqlState: SQLState.programLimitExceeded,
                message: "prepared statement \"\(name)\" cannot be judged again: its text was not kept "
                    + "(more than \(PreparedTexts.maxBytes >> 20) MB of prepared statements, or \(PreparedTexts.maxTextsPerName) texts "
                    + "under one name); prepare it again",
                isPostgreSQLText: false)
    }

    /// A Bind or Execute whose statement is refused now: in its place a Parse, under a name of
    /// its own, whose text the server fails (so the client's statements stay as they are, the
    /// unnamed one too), answered by the refusal; the server then skips to Sync as after a
    /// failed Bind.
    package mutating func refusedInPlace(_ refusal: Refusal) -> ByteBuffer {
        var out = ByteBuffer()
        FrontendMessage.parse(name: "portcullis_refused", query: standInStatement(for: refusal), parameterTypes: []).encode(into: &out)
        return out
    }

    /// A whole text refused without classifying it.
    package static func refusing(_ refusal: Refusal) -> ClassificationResult {
        ClassificationResult(statements: [], syntaxError: refusal)
    }

    /// ``KeptTextBudget``: the process keeps as much prepared statement text as it may.
    package static let keptTextsExhausted = Refusal(
        sqlState: SQLState.outOfMemory,
        message: "out of memory: Portcullis keeps the text of a read-only session's prepared statements to judge each Bind again, and the process keeps max_kept_statement_memory of them already",
        isPostgreSQLText: false)

    package static let unclassified = Refusal(sqlState: SQLState.readOnlySQLTransaction,
                                      message: "statement was not classified", isPostgreSQLText: false)

    /// Simple Query: the statements before the first refused one are kept, the refused one
    /// and everything after it are replaced by the stand-in.
    private mutating func queryReceived(_ message: FrontendMessage, _ result: ClassificationResult,
                                        offsets: [Int]?) -> ClientVerdict {
        guard let refusal = result.firstRefusal else { return .forward }
        var kept = ""
        if case .query(let sql) = message, result.syntaxError == nil,
           let index = result.statements.firstIndex(where: { !$0.isAllowedForReadOnly }), index > 0,
           let offsets, offsets.count == result.statements.count {
            kept = String(decoding: sql.utf8.prefix(offsets[index]), as: UTF8.self)
        }
        return standInQuery(kept: kept, for: refusal)
    }

    /// A Query of the statements kept, then the stand-in for `refusal`.
    private mutating func standInQuery(kept: String, for refusal: Refusal) -> ClientVerdict {
        var out = ByteBuffer()
        let standIn = standInStatement(for: refusal)
        if kept.isEmpty, refusal.isPostgreSQLText,
           refusal.sqlState == SQLState.syntaxError || refusal.sqlState == SQLState.characterNotInRepertoire,
           let last = pending.indices.last, pending[last].batch == batchesSent {
            pending[last].precedesAbortCheck = true
        }
        FrontendMessage.query(kept + "\n" + standIn).encode(into: &out)
        return .replace(out)
    }

    /// A Parse under the client's statement name whose text the server fails.
    private mutating func standInParse(name: String, for refusal: Refusal) -> ClientVerdict {
        var out = ByteBuffer()
        FrontendMessage.parse(name: name, query: standInStatement(for: refusal), parameterTypes: []).encode(into: &out)
        return .replace(out)
    }

    /// Parse: a refused statement is never prepared, so a later Bind or Execute of it fails
    /// as PostgreSQL fails a Bind of a statement whose Parse failed (26000).
    /// `parameterTypesRefusal`: the catalog's verdict on the Parse's declared parameter types
    /// (``CatalogSnapshot/refusal(forParameterTypes:)``), asked by the shell.
    private mutating func parseReceived(name: String, _ result: ClassificationResult,
                                        parameterTypesRefusal: Refusal?) -> ClientVerdict {
        let refusal: Refusal
        if result.syntaxError == nil && result.statements.count > 1 {
            // PostgreSQL refuses this before looking at the statements (postgres.c
            // exec_parse_message), so its error comes first here too; deciding it here means
            // no text we did not judge statement by statement reaches the server.
            refusal = Refusal(sqlState: SQLState.syntaxError,
                              message: "cannot insert multiple commands into a prepared statement",
                              isPostgreSQLText: true)
        } else if let first = result.firstRefusal {
            refusal = first
        } else if let typed = parameterTypesRefusal {
            // A parameter declared with a flagged type's OID coerces through its casts and
            // domain constraints although the text names no type (CatalogSnapshot).
            refusal = typed
        } else {
            return .forward
        }
        return standInParse(name: name, for: refusal)
    }

    package static let invalidEncoding = Refusal(sqlState: SQLState.characterNotInRepertoire,
                                         message: "invalid byte sequence for encoding \"UTF8\"",
                                         isPostgreSQLText: true)

    private mutating func standInStatement(for refusal: Refusal) -> String {
        "SELECT '\(register(refusal))'::pg_catalog.int4"
    }

    /// A fast-path call of int4in(cstring) (OID 42) with the marker: it fails like the
    /// statement stand-in, after the same aborted-transaction check (fastpath.c).
    private mutating func standInFunctionCall(for refusal: Refusal) -> ByteBuffer {
        let marker = Array(register(refusal).utf8)
        var out = ByteBuffer()
        FrontendMessage.functionCall(.init(functionOID: 42, argumentFormats: [0], arguments: [marker],
                                           resultFormat: 0)).encode(into: &out)
        return out
    }

    /// A Query, FunctionCall or Sync was sent: the batch it ends gets one ReadyForQuery, unless
    /// the server skips it (an extended-protocol error before, no Sync since): then nothing ends
    /// and what follows belongs to the same failed batch.
    private mutating func batchEnded(isSync: Bool) {
        if skippingToSync && !isSync { return }
        if isSync { skippingToSync = false }
        ends.append((batchesSent, isSync))
        batchesSent += 1
    }

    /// The batch whose replies come now: the oldest sent and not answered, else the one being sent.
    private var currentBatch: UInt64 { ends.first?.batch ?? batchesSent }

    private mutating func batchCompleted(_ batch: UInt64, failed: Bool) {
        preparedTexts.batchCompleted(batch, failed: failed)
        if portalsRunAtExecute { portalTexts.batchCompleted(batch, failed: failed) }
        pending.removeAll { $0.batch <= batch }
    }

    private mutating func register(_ refusal: Refusal) -> String {
        let token = tokens()
        // In a batch the server already failed, the stand-in is skipped: nothing to await.
        if failedBatch != batchesSent {
            pending.append(PendingRefusal(token: token, batch: batchesSent, refusal: refusal))
        }
        return Self.markerPrefix + token
    }

    // MARK: Server messages

    /// Returns the ErrorResponse to send the client instead of `fields`, or nil to forward
    /// the server's own. Every error ends the batch it belongs to, so stand-ins later in that
    /// batch will never run and are forgotten.
    /// `skipsToSync`: the error is an extended-protocol message's (``StatementLifecycle/errorSkipsToSync``),
    /// so the server skips everything up to the next Sync (postgres.c `ignore_till_sync`).
    package mutating func serverErrorReceived(_ fields: ErrorFields, skipsToSync: Bool = false) -> ErrorFields? {
        var replacement: ErrorFields?
        let current = currentBatch
        if fields.sqlState == SQLState.invalidTextRepresentation, let message = fields.message,
           let index = pendingIndex(in: message) {
            let refusal = pending[index].refusal
            // Replies come in order: refusals sent before this one are settled.
            pending.removeSubrange(...index)
            replacement = Self.errorFields(for: refusal, identity: identity)
        } else if fields.sqlState == SQLState.inFailedSQLTransaction,
                  let first = pending.first(where: { $0.batch == current }), first.precedesAbortCheck {
            // The stand-in Query in an aborted block: PostgreSQL would have failed the text
            // before that check (postgres.c exec_simple_query: pg_parse_query, then
            // IsAbortedTransactionBlockState).
            replacement = Self.errorFields(for: first.refusal, identity: identity)
        }
        failedBatch = current
        pending.removeAll { $0.batch == current }
        if skipsToSync {
            // The Queries and FunctionCalls up to the next Sync are skipped: no ReadyForQuery
            // ends their batches, and what they held did not happen.
            while let first = ends.first, !first.isSync {
                _ = ends.popFirst()
                batchCompleted(first.batch, failed: true)
            }
            if let sync = ends.first {
                failedBatch = sync.batch
            } else {
                failedBatch = batchesSent
                skippingToSync = true
            }
        }
        return replacement
    }

    package mutating func readyForQueryReceived() {
        // A ReadyForQuery the gate did not see a batch for (none is owed) changes nothing.
        guard let end = ends.popFirst() else { return }
        batchCompleted(end.batch, failed: failedBatch == end.batch)
    }

    /// The pending refusal whose token follows a marker prefix in `message`.
    private func pendingIndex(in message: String) -> Int? {
        guard !pending.isEmpty else { return nil }
        var rest = message[...]
        while let range = rest.firstRange(of: Self.markerPrefix) {
            let token = rest[range.upperBound...].prefix { $0.isASCII && ($0.isLetter || $0.isNumber) }
            if let index = pending.firstIndex(where: { $0.token == token }) { return index }
            rest = rest[range.upperBound...]
        }
        return nil
    }

    /// The ErrorResponse PostgreSQL sends for the refusal (elog.c field order S, V, C, M, H, P).
    package static func errorFields(for refusal: Refusal, identity: String) -> ErrorFields {
        let hint = refusal.sqlState == SQLState.readOnlySQLTransaction
            ? "Portcullis identity \"\(identity)\" is read-only." : nil
        var fields = ErrorFields.error(sqlState: refusal.sqlState, message: refusal.message, hint: hint)
        if let position = refusal.cursorPosition {
            fields.fields.append(.init(code: UInt8(ascii: "P"), value: "\(position)"))
        }
        return fields
    }
}

/// What a session's gate refuses of a Query's statements, so the shell knows whether it must
/// locate them (``ReadOnlyGate/keepsStatementsBefore(_:refusing:)``).
package struct StatementRefusals: Sendable, Equatable {
    /// What read-only mode refuses.
    package var readOnly: Bool
    /// `transaction_pin = refuse`: statements that would pin (`PREPARE`, `LISTEN`, which
    /// read-only mode allows; found in review: `SELECT 'a;b'; PREPARE …` was refused whole, its
    /// statement offsets never asked for).
    package var pins: Bool

    package static let readOnly = StatementRefusals(readOnly: true, pins: false)

    package init(readOnly: Bool, pins: Bool) {
        self.readOnly = readOnly
        self.pins = pins
    }

    /// Any refusals at all: a gate without them never needs offsets.
    package var refusesAny: Bool { readOnly || pins }

    func refuses(_ statement: StatementClassification) -> Bool {
        (readOnly && !statement.isAllowedForReadOnly)
            || (pins && !statement.sessionEffects.isDisjoint(with: SessionMachine.refusable))
    }
}
