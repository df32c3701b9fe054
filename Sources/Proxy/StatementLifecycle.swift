/// Follows each statement of a session from the client message that starts it to its outcome,
/// for the audit stream. Observe-only and pure: the shell feeds it the client's Query, Parse,
/// Bind, Execute, Close, Sync and FunctionCall and the server's CommandComplete, ErrorResponse,
/// EmptyQueryResponse, PortalSuspended and ReadyForQuery, with injected timestamps; it never
/// changes what is forwarded.
///
/// The order of replies is the protocol's (PostgreSQL docs 55.2.2 Simple Query, 55.2.3 Extended
/// Query): the server answers messages in the order it received them; a simple Query string
/// runs its statements in order, each ending in CommandComplete (or EmptyQueryResponse), and an
/// error ends the whole string; in the extended protocol an error makes the server discard every
/// message up to the next Sync; each Sync and each Query or FunctionCall ends in one
/// ReadyForQuery. Records are released at that ReadyForQuery, with its transaction status.
struct StatementLifecycle: Sendable {
    enum Outcome: Equatable, Sendable {
        case ok
        case failed(sqlState: String, message: String)
        /// Refused by Portcullis's read-only gate (its stand-in's error was rewritten).
        case refused(sqlState: String, message: String)
    }

    enum Source: Equatable, Sendable {
        case simpleQuery
        case extendedQuery
        case functionCall(oid: UInt32)
    }

    /// One finished statement.
    struct Record: Equatable, Sendable {
        /// The whole Query string (one per statement of it), the Parse text, or empty for a FunctionCall.
        var text: String
        /// Counted from 1 per session: one per Query string, Execute or FunctionCall.
        var statementID: UInt64
        /// 1-based position of the statement inside its Query string (1 for the others).
        var substatementID: UInt64
        var source: Source
        /// The CommandComplete tag ("INSERT 0 1", "SELECT 3"), nil when it did not complete.
        var tag: String?
        var outcome: Outcome
        var startedAt: Int64
        var finishedAt: Int64
        /// ReadyForQuery's status byte after the statement: I, T or E.
        var transactionStatus: UInt8?

        /// Rows from the tag's last number (INSERT oid rows, SELECT rows, COPY rows …), for
        /// the tags that report one (cmdtaglist.h: rowcount true).
        var rows: Int64? {
            guard let tag, let last = tag.split(separator: " ").last, let value = Int64(last) else { return nil }
            return value
        }

        /// The command without its counts ("INSERT 0 1" → "INSERT").
        var command: String? {
            guard let tag else { return nil }
            var words = tag.split(separator: " ")
            while let last = words.last, words.count > 1, Int64(last) != nil { words.removeLast() }
            return words.joined(separator: " ")
        }
    }

    private enum Op: Sendable {
        case query(text: String, statementID: UInt64, next: Int, failed: Bool, lastAt: Int64)
        case parse(text: String)
        case execute(text: String, startedAt: Int64)
        case function(oid: UInt32, startedAt: Int64)
        case sync
        /// The client's CopyDone or CopyFail, queued before the server's CopyInResponse was seen.
        case copyEnd
    }

    /// Bounds: named statements and portals kept (oldest names forgotten beyond it), texts kept.
    static let maxNames = 4096
    static let maxTextBytes = 1 << 20

    private var ops: [Op] = []
    private var statements: [String: String] = [:]
    private var portals: [String: String] = [:]
    private var finished: [Record] = []
    private var nextStatementID: UInt64 = 1
    /// After an extended-protocol error, client messages up to the next Sync are discarded by
    /// the server: they are not queued here either.
    /// CopyInResponse seen, the client's CopyDone/CopyFail not yet.
    private var inCopyIn = false
    private var discardingUntilSync = false
    /// Records finished so far (for the disconnect event).
    private(set) var statementCount: UInt64 = 0

    init() {}

    static func bounded(_ text: String) -> String {
        text.utf8.count <= maxTextBytes ? text : String(decoding: text.utf8.prefix(maxTextBytes), as: UTF8.self) + "…"
    }

    private mutating func takeStatementID() -> UInt64 {
        defer { nextStatementID += 1 }
        return nextStatementID
    }

    // MARK: Client messages

    mutating func queryReceived(_ text: String, at time: Int64) {
        ops.append(.query(text: Self.bounded(text), statementID: takeStatementID(), next: 1, failed: false, lastAt: time))
    }

    mutating func parseReceived(name: String, text: String) {
        guard !discardingUntilSync else { return }
        let kept = Self.bounded(text)
        if statements.count >= Self.maxNames, statements[name] == nil { statements.removeAll(keepingCapacity: true) }
        statements[name] = kept
        ops.append(.parse(text: kept))
    }

    mutating func bindReceived(portal: String, statement: String) {
        guard !discardingUntilSync else { return }
        if portals.count >= Self.maxNames, portals[portal] == nil { portals.removeAll(keepingCapacity: true) }
        portals[portal] = statements[statement] ?? ""
    }

    mutating func executeReceived(portal: String, at time: Int64) {
        guard !discardingUntilSync else { return }
        ops.append(.execute(text: portals[portal] ?? "", startedAt: time))
    }

    /// Close (`S` statement or `P` portal).
    mutating func closeReceived(isStatement: Bool, name: String) {
        guard !discardingUntilSync else { return }
        if isStatement { statements[name] = nil } else { portals[name] = nil }
    }

    mutating func syncReceived() {
        // In copy-in mode the server ignores Sync (docs 55.2.6 COPY Operations); libpq sends one
        // right after the Execute of a COPY FROM STDIN and another after CopyDone/CopyFail.
        guard !inCopyIn else { return }
        discardingUntilSync = false
        ops.append(.sync)
    }

    /// The client's CopyDone or CopyFail.
    mutating func copyEndReceived() {
        if inCopyIn { inCopyIn = false } else { ops.append(.copyEnd) }
    }

    /// The server's CopyInResponse for the operation at the head: the Syncs the client sent
    /// after it and before its CopyDone/CopyFail reach the server in copy-in mode and are
    /// ignored, so they are no batch ends.
    mutating func copyInStarted() {
        var index = 1
        while index < ops.count {
            switch ops[index] {
            case .sync: ops.remove(at: index)
            case .copyEnd:
                ops.remove(at: index)
                return
            default: index += 1
            }
        }
        inCopyIn = true
    }

    mutating func functionCallReceived(oid: UInt32, at time: Int64) {
        ops.append(.function(oid: oid, startedAt: time))
    }

    // MARK: Server messages

    mutating func commandCompleteReceived(tag: String, at time: Int64) {
        dropSucceededParses()
        guard let head = ops.first else { return }
        switch head {
        case .query(let text, let id, let next, let failed, let lastAt):
            finish(Record(text: text, statementID: id, substatementID: UInt64(next), source: .simpleQuery, tag: tag,
                          outcome: .ok, startedAt: lastAt, finishedAt: time))
            ops[0] = .query(text: text, statementID: id, next: next + 1, failed: failed, lastAt: time)
        case .execute(let text, let startedAt):
            finish(Record(text: text, statementID: takeStatementID(), substatementID: 1, source: .extendedQuery, tag: tag,
                          outcome: .ok, startedAt: startedAt, finishedAt: time))
            ops.removeFirst()
        case .parse, .function, .sync, .copyEnd:
            break
        }
    }

    mutating func emptyQueryReceived(at time: Int64) {
        dropSucceededParses()
        guard let head = ops.first else { return }
        switch head {
        case .query(let text, let id, let next, let failed, _):
            ops[0] = .query(text: text, statementID: id, next: next + 1, failed: failed, lastAt: time)
        case .execute:
            ops.removeFirst()
        case .parse, .function, .sync, .copyEnd:
            break
        }
    }

    /// An Execute with a row limit stopped early; the portal's statement has not finished.
    mutating func portalSuspendedReceived() {
        dropSucceededParses()
        if case .execute? = ops.first { ops.removeFirst() }
    }

    /// An ErrorResponse (not a NoticeResponse). `refused`: the gate rewrote it into a refusal.
    mutating func errorReceived(sqlState: String, message: String, refused: Bool, at time: Int64) {
        let outcome: Outcome = refused ? .refused(sqlState: sqlState, message: message)
                                       : .failed(sqlState: sqlState, message: message)
        guard let head = ops.first else { return }
        switch head {
        case .query(let text, let id, let next, let failed, let lastAt):
            if !failed {
                finish(Record(text: text, statementID: id, substatementID: UInt64(next), source: .simpleQuery, tag: nil,
                              outcome: outcome, startedAt: lastAt, finishedAt: time))
            }
            ops[0] = .query(text: text, statementID: id, next: next + 1, failed: true, lastAt: time)
        case .function(let oid, let startedAt):
            finish(Record(text: "", statementID: takeStatementID(), substatementID: 1, source: .functionCall(oid: oid),
                          tag: nil, outcome: outcome, startedAt: startedAt, finishedAt: time))
            ops[0] = .sync  // settled; its ReadyForQuery still ends it
        case .sync, .copyEnd:
            // An error at Sync itself (a failed COMMIT of an implicit transaction): nothing to
            // attribute it to beyond the batch.
            break
        case .parse, .execute:
            // Everything up to the next Sync is discarded by the server. The statement that
            // failed is the first Execute of the batch (its Parse or Bind may be the one that
            // failed), else the Parse that failed to prepare.
            let end = ops.firstIndex { if case .sync = $0 { return true } else { return false } } ?? ops.count
            var failedText: (String, Int64)?
            for op in ops[..<end] {
                if case .execute(let text, let startedAt) = op { failedText = (text, startedAt); break }
            }
            if failedText == nil, case .parse(let text) = head { failedText = (text, time) }
            if let (text, startedAt) = failedText {
                finish(Record(text: text, statementID: takeStatementID(), substatementID: 1, source: .extendedQuery,
                              tag: nil, outcome: outcome, startedAt: startedAt, finishedAt: time))
            }
            if end == ops.count { discardingUntilSync = true }
            ops.removeFirst(end)
        }
    }

    /// Ends a Query, FunctionCall or Sync batch; returns the records it finished.
    mutating func readyForQueryReceived(status: UInt8, at time: Int64) -> [Record] {
        ending: while let head = ops.first {
            ops.removeFirst()
            switch head {
            case .query, .sync:
                break ending
            case .function(let oid, let startedAt):
                finish(Record(text: "", statementID: takeStatementID(), substatementID: 1, source: .functionCall(oid: oid),
                              tag: nil, outcome: .ok, startedAt: startedAt, finishedAt: time))
                break ending
            case .parse, .execute, .copyEnd:
                continue ending
            }
        }
        guard !finished.isEmpty else { return [] }
        var out = finished
        finished.removeAll()
        for index in out.indices { out[index].transactionStatus = status }
        return out
    }

    private mutating func dropSucceededParses() {
        while case .parse? = ops.first { ops.removeFirst() }
    }

    private mutating func finish(_ record: Record) {
        statementCount += 1
        finished.append(record)
    }
}
