import Policy
import Wire

/// A read-only session's Bind and Execute: the statement they run is judged again, with the
/// catalog as it is now, because PostgreSQL analyses a prepared statement again when its plan is
/// invalidated and reads domain constraints and policies at each executor start
/// (``PreparedTexts``). A Bind (or Execute) whose statement is refused now is replaced by a
/// stand-in the server fails (``ReadOnlyGate/refusedInPlace(_:)``), so the client gets the
/// refusal where its BindComplete (or its rows) would have been and the server skips to Sync,
/// as after any failed Bind.
///
/// An Execute is judged again only for a portal whose statement runs its query at Execute, not
/// at Bind: a utility statement (EXPLAIN ANALYZE, COPY (query) TO, DECLARE CURSOR, …). A plain
/// SELECT's executor starts at Bind (pquery.c PortalStart, PORTAL_ONE_SELECT), with the
/// functions, domain constraints and policies of that moment.
extension SessionMachine {
    /// What a held message is, while its statement's texts are judged again.
    enum HeldMessage {
        /// A Bind of `portal`, judged against `texts`; its bytes are kept only under transaction
        /// pooling, which rewrites it (session mode forwards it as it is, without a copy).
        case bind(ByteBuffer?, portal: StatementName, texts: String)
        case execute(texts: String)
    }

    /// A Close, whole at the front: the gate forgets a statement's or a portal's text once the
    /// server has done it.
    mutating func readOnlyCloseSeen(_ frame: MessageFrame, in buffer: ByteBuffer) {
        let payload = buffer.readableBytesView.dropFirst(5).prefix(frame.totalLength - 5)
        let name = StatementName(payload.dropFirst().prefix { $0 != 0 })
        switch payload.first {
        case FrontendMessage.DescribeTarget.statement.rawValue?: withGate { $0.statementCloseReceived(name) }
        case FrontendMessage.DescribeTarget.portal.rawValue?: withGate { $0.portalCloseReceived(name) }
        default: break
        }
    }

    /// A Bind, whole at the front. Nil: nothing to judge again (the statement's text is not
    /// known: never prepared by this client, so the server answers 26000), go on as usual.
    mutating func judgeBindAgain(_ frame: MessageFrame, in buffer: ByteBuffer) -> Action? {
        let payload = buffer.readableBytesView.dropFirst(5).prefix(frame.totalLength - 5)
        // portal NUL statement NUL … (a malformed Bind is the server's to refuse: 08P01).
        guard let end = payload.firstIndex(of: 0) else { return nil }
        let portal = StatementName(payload[..<end])
        let name = StatementName(payload[(end + 1)...].prefix { $0 != 0 })
        guard let candidates = gate?.bindCandidates(name) else {
            return refuseInPlace(frame, ReadOnlyGate.preparedTextsLost(name.description))
        }
        // No text known: no Parse or PREPARE of this session defined the name (the server
        // answers 26000 too), or the gate lost track of one the server holds; either way it
        // is not run (found in review: forwarding it was fail-open).
        guard let first = candidates.first else {
            return refuseInPlace(frame, ReadOnlyGate.unknownStatement(name.description))
        }
        if let tooLong = tooLong(candidates.lazy.map(\.sql)) { return refuseInPlace(frame, tooLong) }
        var held: ByteBuffer?
        if configuration.transactionPooling != nil {
            var bytes = ByteBuffer()
            bytes.writeBytes(buffer.readableBytesView.prefix(frame.totalLength))
            held = bytes
        }
        // Every text the name may stand for, as one string of statements: each was a single
        // statement PostgreSQL's grammar accepted (a refused Parse is never kept), so
        // separating them by a newline and a semicolon ends any comment or statement.
        let texts = candidates.count == 1 ? first.sql : candidates.map(\.sql).joined(separator: "\n;\n")
        pendingClassification = PendingClassification(frame: frame, message: .flush, held: .bind(held, portal: portal, texts: texts))
        var types = first.parameterTypes
        for candidate in candidates.dropFirst() { types += candidate.parameterTypes.filter { !types.contains($0) } }
        return .classify(ClassificationRequest(sql: texts, isQuery: false, parameterTypes: types, messageLength: frame.totalLength))
    }

    /// An Execute, whole at the front. Nil: its portal's statement started at Bind (or is not
    /// known), go on as usual.
    mutating func judgeExecuteAgain(_ frame: MessageFrame, in buffer: ByteBuffer) -> Action? {
        let payload = buffer.readableBytesView.dropFirst(5).prefix(frame.totalLength - 5)
        guard let end = payload.firstIndex(of: 0) else { return nil }
        let portal = StatementName(payload[..<end])
        guard let texts = gate?.executeCandidates(portal) else {
            return refuseInPlace(frame, ReadOnlyGate.preparedTextsLost(portal.description))
        }
        guard !texts.isEmpty else { return nil }
        if let tooLong = tooLong(texts) { return refuseInPlace(frame, tooLong) }
        let joined = texts.joined(separator: "\n;\n")
        pendingClassification = PendingClassification(frame: frame, message: .flush, held: .execute(texts: joined))
        return .classify(ClassificationRequest(sql: joined, isQuery: false, parameterTypes: [], messageLength: frame.totalLength))
    }

    /// Texts judged again together are bounded as one statement is (`readonly_max_statement_size`):
    /// a 20-byte Bind must not make the classifier parse megabytes (found in review).
    func tooLong(_ texts: some Sequence<String>) -> Refusal? {
        let limit = configuration.readOnly?.maxStatementSize ?? .max
        let size = texts.reduce(0) { $0 + $1.utf8.count + 3 }
        return size > limit ? Self.statementTooLong(size, limit: limit) : nil
    }

    /// What a session refuses when a prepared statement it executes runs EXECUTE itself (a
    /// protocol Parse of `EXECUTE p`): the chain is not followed further.
    static let nestedExecute = Refusal(sqlState: SQLState.readOnlySQLTransaction,
                                       message: "EXECUTE of a prepared statement that runs EXECUTE itself is not allowed for a read-only identity",
                                       isPostgreSQLText: false)

    /// The answer to ``Action/classify(_:)`` for `pending`. A read-only session judges again
    /// what the text executes: the texts of the prepared statements an EXECUTE names (SQL
    /// PREPARE and protocol Parse share one namespace, prepare.c), in a second classification;
    /// then the first answer is judged with those EXECUTEs refused if their statements are.
    mutating func judged(_ pending: PendingClassification, _ result: ClassificationResult, statementOffsets: [Int]?,
                         parameterTypesRefusal: Refusal?) -> Action {
        if let first = pending.expanding {
            // The answer for the executed statements' texts.
            let refusal = result.firstRefusal ?? parameterTypesRefusal
                ?? (ReadOnlyGate.executedStatements(result).isEmpty ? nil : Self.nestedExecute)
            if let held = pending.held {
                return refusal.map { refuseInPlace(pending.frame, $0) } ?? heldAllowed(pending, held, first.first)
            }
            return verdict(for: pending.message, pending.frame, rawParse: pending.rawParse, textIsUTF8: true,
                           classification: refusal.map { Self.refusingExecutes(first.first, $0) } ?? first.first,
                           statementOffsets: first.offsets, parameterTypesRefusal: first.typed)
        }
        if let held = pending.held {
            if let refusal = result.firstRefusal ?? parameterTypesRefusal { return refuseInPlace(pending.frame, refusal) }
            switch expansion(of: result, messageLength: pending.frame.totalLength) {
            case .none: return heldAllowed(pending, held, result)
            case .lost(let refusal): return refuseInPlace(pending.frame, refusal)
            case .judge(let request):
                pending.expanding = (result, nil, nil)
                pendingClassification = pending
                return .classify(request)
            }
        }
        if configuration.readOnly != nil && result.syntaxError == nil {
            switch expansion(of: result, messageLength: pending.frame.totalLength) {
            case .none: break
            case .lost(let refusal):
                return verdict(for: pending.message, pending.frame, rawParse: pending.rawParse, textIsUTF8: true,
                               classification: Self.refusingExecutes(result, refusal), statementOffsets: statementOffsets,
                               parameterTypesRefusal: parameterTypesRefusal)
            case .judge(let request):
                pending.expanding = (result, statementOffsets, parameterTypesRefusal)
                pendingClassification = pending
                return .classify(request)
            }
        }
        return verdict(for: pending.message, pending.frame, rawParse: pending.rawParse, textIsUTF8: true, classification: result,
                       statementOffsets: statementOffsets, parameterTypesRefusal: parameterTypesRefusal)
    }

    enum Expansion {
        /// It executes no prepared statement.
        case none
        case lost(Refusal)
        case judge(ClassificationRequest)
    }

    /// The texts of the prepared statements `result` executes, as one request.
    func expansion(of result: ClassificationResult, messageLength: Int) -> Expansion {
        let names = ReadOnlyGate.executedStatements(result)
        guard !names.isEmpty, let gate else { return .none }
        var texts: [String] = []
        var types: [Int32] = []
        for name in names {
            guard let candidates = gate.bindCandidates(name) else { return .lost(ReadOnlyGate.preparedTextsLost(name.description)) }
            // A name without a text is not run (as at Bind): PostgreSQL's own 26000 if it truly
            // does not exist, else the gate lost track of it.
            guard !candidates.isEmpty else { return .lost(ReadOnlyGate.unknownStatement(name.description)) }
            for candidate in candidates where !texts.contains(candidate.sql) {
                texts.append(candidate.sql)
                types += candidate.parameterTypes.filter { !types.contains($0) }
            }
        }
        guard !texts.isEmpty else { return .none }
        if let tooLong = tooLong(texts) { return .lost(tooLong) }
        return .judge(ClassificationRequest(sql: texts.joined(separator: "\n;\n"), isQuery: false, parameterTypes: types,
                                            messageLength: messageLength))
    }

    /// `result` with each statement that executes a prepared statement refused.
    static func refusingExecutes(_ result: ClassificationResult, _ refusal: Refusal) -> ClassificationResult {
        ClassificationResult(statements: result.statements.map { statement in
            let executes = ReadOnlyGate.executedStatements(ClassificationResult(statements: [statement], syntaxError: nil))
            return executes.isEmpty || statement.refusal != nil ? statement : statement.refused(refusal)
        }, syntaxError: result.syntaxError)
    }

    private mutating func refuseInPlace(_ frame: MessageFrame, _ refusal: Refusal) -> Action {
        let bytes = withGate { $0.refusedInPlace(refusal) } ?? ByteBuffer()
        return .replaceToServer(consume: frame.totalLength, bytes: bytes)
    }

    /// The held message goes on. A Bind's portal is noted with its texts when its statement
    /// runs at Execute (anything but a plain SELECT, judged by `result`, the Bind's own texts').
    private mutating func heldAllowed(_ pending: PendingClassification, _ held: HeldMessage, _ result: ClassificationResult) -> Action {
        switch held {
        case .execute(let texts):
            // A PREPARE it runs defines its name again, each time (found in review: a Parse of
            // `PREPARE s AS …`, a Close of s, then a Bind and Execute of it made s unknown).
            withGate { $0.preparesMayRun(result, text: texts) }
            return .forwardToServer(pending.frame.totalLength)
        case .bind(let bytes, let portal, let texts):
            let startsAtBind = result.syntaxError == nil && result.statements.allSatisfy { $0.commandTag == "SELECT" }
            withGate { $0.portalBound(portal, runsAtExecute: startsAtBind ? nil : texts) }
            withGate { $0.preparesMayRun(result, text: texts) }
            if configuration.transactionPooling != nil, let bytes {
                return preparedStatementStep(pending.frame, in: bytes)
            }
            return .forwardToServer(pending.frame.totalLength)
        }
    }
}
