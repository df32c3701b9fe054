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
/// The marker carries a per-session random nonce and a serial number, so a client cannot make
/// its own errors look like a refusal, and an aborted transaction's 25P02 (which the stand-in
/// also gets) passes through unchanged, exactly as PostgreSQL would answer.
struct ReadOnlyGate {
    enum ClientVerdict: Equatable {
        case forward
        /// Send these bytes (one whole frame) in place of the client's message.
        case replace(ByteBuffer)
    }

    /// Client message types the gate must see whole: Query, Parse, FunctionCall, and Sync
    /// (to count the batches that each end in one ReadyForQuery).
    static let inspectedClientTypes: Set<UInt8> = [
        UInt8(ascii: "Q"), UInt8(ascii: "P"), UInt8(ascii: "F"), UInt8(ascii: "S"),
    ]

    struct PendingRefusal {
        let serial: UInt64
        /// The ReadyForQuery (counted from the session start) that closes the batch holding
        /// the stand-in: once it arrived, the stand-in either failed or never ran.
        let batch: UInt64
        let refusal: Refusal
    }

    let identity: String
    private let markerPrefix: String
    private var nextSerial: UInt64 = 0
    private var pending: [PendingRefusal] = []
    private var batchesSent: UInt64 = 0
    private var batchesCompleted: UInt64 = 0
    /// Bound on refusals awaiting their error; older ones are forgotten (the client then sees
    /// the stand-in's own error — still a refusal, never a write).
    static let maxPending = 256

    init(identity: String, nonce: String) {
        self.identity = identity
        markerPrefix = "portcullis-refused-\(nonce)-"
    }

    var pendingCount: Int { pending.count }

    // MARK: Client messages

    /// - Parameter textIsUTF8: whether the message's SQL text bytes are valid UTF-8; the text
    ///   is judged as UTF-8, so other bytes are refused as PostgreSQL refuses them in a UTF8
    ///   client encoding (22021) — fail closed for other client encodings.
    /// - Parameter catalog: the upstream database's relations that must not be read
    ///   (``CatalogSnapshot``).
    mutating func clientMessageReceived(_ message: FrontendMessage, textIsUTF8: Bool = true,
                                        classifier: inout CachingStatementClassifier,
                                        catalog: CatalogSnapshot = .empty) -> ClientVerdict {
        switch message {
        case .query(let sql):
            defer { batchesSent += 1 }
            guard textIsUTF8 else { return standInQuery(kept: "", for: Self.invalidEncoding) }
            return queryReceived(sql, classifier: &classifier, catalog: catalog)
        case .parse(let name, let sql, let parameterTypes):
            guard textIsUTF8 else { return standInParse(name: name, for: Self.invalidEncoding) }
            return parseReceived(name: name, sql: sql, parameterTypes: parameterTypes, classifier: &classifier, catalog: catalog)
        case .functionCall(let call):
            defer { batchesSent += 1 }
            guard let refusal = FastPathPolicy.refusal(functionOID: call.functionOID,
                                                       argumentFormats: call.argumentFormats,
                                                       arguments: call.arguments) else { return .forward }
            return .replace(standInFunctionCall(for: refusal))
        case .sync:
            batchesSent += 1
            return .forward
        case .bind, .execute, .describe, .close, .flush, .terminate, .copyData, .copyDone, .copyFail,
             .passwordMessage, .saslInitialResponse, .saslResponse:
            return .forward
        }
    }

    /// Simple Query: the statements before the first refused one are kept, the refused one
    /// and everything after it are replaced by the stand-in.
    private mutating func queryReceived(_ sql: String, classifier: inout CachingStatementClassifier,
                                        catalog: CatalogSnapshot) -> ClientVerdict {
        let result = classifier.classify(sql: sql, catalog: catalog)
        guard let refusal = result.firstRefusal else { return .forward }
        var kept = ""
        if result.syntaxError == nil,
           let index = result.statements.firstIndex(where: { !$0.isAllowedForReadOnly }), index > 0,
           let offsets = StatementSplitter.statementOffsets(sql), offsets.count == result.statements.count {
            kept = String(decoding: sql.utf8.prefix(offsets[index]), as: UTF8.self)
        }
        return standInQuery(kept: kept, for: refusal)
    }

    /// A Query of the statements kept, then the stand-in for `refusal`.
    private mutating func standInQuery(kept: String, for refusal: Refusal) -> ClientVerdict {
        var out = ByteBuffer()
        FrontendMessage.query(kept + "\n" + standInStatement(for: refusal)).encode(into: &out)
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
    private mutating func parseReceived(name: String, sql: String, parameterTypes: [Int32] = [], classifier: inout CachingStatementClassifier,
                                        catalog: CatalogSnapshot) -> ClientVerdict {
        let result = classifier.classify(sql: sql, catalog: catalog)
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
        } else if let typed = catalog.refusal(forParameterTypes: parameterTypes) {
            // A parameter declared with a flagged type's OID coerces through its casts and
            // domain constraints although the text names no type (CatalogSnapshot).
            refusal = typed
        } else {
            return .forward
        }
        return standInParse(name: name, for: refusal)
    }

    static let invalidEncoding = Refusal(sqlState: SQLState.characterNotInRepertoire,
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

    private mutating func register(_ refusal: Refusal) -> String {
        let serial = nextSerial
        nextSerial += 1
        if pending.count >= Self.maxPending { pending.removeFirst() }
        pending.append(PendingRefusal(serial: serial, batch: batchesSent, refusal: refusal))
        return "\(markerPrefix)\(serial)"
    }

    // MARK: Server messages

    /// Returns the ErrorResponse to send the client instead of `fields`, or nil to forward
    /// the server's own.
    mutating func serverErrorReceived(_ fields: ErrorFields) -> ErrorFields? {
        guard !pending.isEmpty, fields.sqlState == SQLState.invalidTextRepresentation,
              let message = fields.message, let serial = serial(in: message),
              let index = pending.firstIndex(where: { $0.serial == serial }) else { return nil }
        let refusal = pending[index].refusal
        pending.removeSubrange(...index)
        return Self.errorFields(for: refusal, identity: identity)
    }

    mutating func readyForQueryReceived() {
        batchesCompleted += 1
        let completed = batchesCompleted
        pending.removeAll { $0.batch < completed }
    }

    private func serial(in message: String) -> UInt64? {
        guard let range = message.firstRange(of: markerPrefix) else { return nil }
        let digits = message[range.upperBound...].prefix { $0.isASCII && $0.isNumber }
        return UInt64(digits)
    }

    /// The ErrorResponse PostgreSQL sends for the refusal (elog.c field order S, V, C, M, H, P).
    static func errorFields(for refusal: Refusal, identity: String) -> ErrorFields {
        let hint = refusal.sqlState == SQLState.readOnlySQLTransaction
            ? "Portcullis identity \"\(identity)\" is read-only." : nil
        var fields = ErrorFields.error(sqlState: refusal.sqlState, message: refusal.message, hint: hint)
        if let position = refusal.cursorPosition {
            fields.fields.append(.init(code: UInt8(ascii: "P"), value: "\(position)"))
        }
        return fields
    }
}
