import Policy
import Wire

/// A read-only session's Bind: the statement it runs is judged again, with the catalog as it
/// is now, because PostgreSQL analyses a prepared statement again when its plan is
/// invalidated and reads domain constraints and policies at each executor start
/// (``PreparedTexts``). A Bind whose statement is refused now is replaced by a stand-in the
/// server fails (``ReadOnlyGate/bindRefused(_:)``), so the client gets the refusal where its
/// BindComplete would have been and the server skips to Sync, as after any failed Bind.
extension SessionMachine {
    /// A Close of a statement ('S'), whole at the front: the gate forgets its text once the
    /// server has done it.
    mutating func readOnlyCloseSeen(_ frame: MessageFrame, in buffer: ByteBuffer) {
        let payload = buffer.readableBytesView.dropFirst(5).prefix(frame.totalLength - 5)
        guard payload.first == FrontendMessage.DescribeTarget.statement.rawValue else { return }
        let name = StatementName(payload.dropFirst().prefix { $0 != 0 })
        withGate { $0.statementCloseReceived(name) }
    }

    /// A Bind, whole at the front. Nil: nothing to judge again (the statement's text is not
    /// known: never prepared by this client, so the server answers 26000), go on as usual.
    mutating func judgeBindAgain(_ frame: MessageFrame, in buffer: ByteBuffer) -> Action? {
        let payload = buffer.readableBytesView.dropFirst(5).prefix(frame.totalLength - 5)
        // portal NUL statement NUL … (a malformed Bind is the server's to refuse: 08P01).
        guard let end = payload.firstIndex(of: 0) else { return nil }
        let name = StatementName(payload[(end + 1)...].prefix { $0 != 0 })
        guard let candidates = gate?.bindCandidates(name) else {
            let bytes = withGate { $0.bindRefused(ReadOnlyGate.preparedTextsLost(name.description)) } ?? ByteBuffer()
            return .replaceToServer(consume: frame.totalLength, bytes: bytes)
        }
        guard !candidates.isEmpty else { return nil }
        var held = ByteBuffer()
        held.writeBytes(buffer.readableBytesView.prefix(frame.totalLength))
        pendingClassification = PendingClassification(frame: frame, message: .flush, heldBind: held)
        // Every text the name may stand for, as one string of statements: each was a single
        // statement PostgreSQL's grammar accepted (a refused Parse is never kept), so
        // separating them by a newline and a semicolon ends any comment or statement.
        var types: [Int32] = []
        for candidate in candidates { types += candidate.parameterTypes.filter { !types.contains($0) } }
        return .classify(ClassificationRequest(sql: candidates.map(\.sql).joined(separator: "\n;\n"), isQuery: false,
                                               parameterTypes: types, messageLength: frame.totalLength))
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
            if let bind = pending.heldBind {
                return refusal.map { refuseBind(pending, $0) } ?? bindAllowed(pending, bind)
            }
            return verdict(for: pending.message, pending.frame, rawParse: pending.rawParse, textIsUTF8: true,
                           classification: refusal.map { Self.refusingExecutes(first.first, $0) } ?? first.first,
                           statementOffsets: first.offsets, parameterTypesRefusal: first.typed)
        }
        if let bind = pending.heldBind {
            if let refusal = result.firstRefusal ?? parameterTypesRefusal { return refuseBind(pending, refusal) }
            switch expansion(of: result, messageLength: pending.frame.totalLength) {
            case .none: return bindAllowed(pending, bind)
            case .lost(let refusal): return refuseBind(pending, refusal)
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
        /// It executes no prepared statement whose text is known (an unknown name is the
        /// server's to refuse, 26000).
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
            for candidate in candidates where !texts.contains(candidate.sql) {
                texts.append(candidate.sql)
                types += candidate.parameterTypes.filter { !types.contains($0) }
            }
        }
        guard !texts.isEmpty else { return .none }
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

    private mutating func refuseBind(_ pending: PendingClassification, _ refusal: Refusal) -> Action {
        let bytes = withGate { $0.bindRefused(refusal) } ?? ByteBuffer()
        return .replaceToServer(consume: pending.frame.totalLength, bytes: bytes)
    }

    private mutating func bindAllowed(_ pending: PendingClassification, _ bind: ByteBuffer) -> Action {
        if configuration.transactionPooling != nil {
            return preparedStatementStep(pending.frame, in: bind)
        }
        return .forwardToServer(pending.frame.totalLength)
    }
}
