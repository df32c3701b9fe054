import Wire

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
package struct StatementLifecycle: Sendable {
    package enum Outcome: Equatable, Sendable {
        case ok
        case failed(sqlState: String, message: String)
        /// Refused by Portcullis's read-only gate (its stand-in's error was rewritten).
        case refused(sqlState: String, message: String)
        /// The session ended (client gone, server gone, shutdown) before the statement's
        /// outcome arrived: it may or may not have run.
        case disconnected
    }

    package enum Source: Equatable, Sendable {
        case simpleQuery
        case extendedQuery
        case functionCall(oid: UInt32)
    }

    /// One finished statement.
    package struct Record: Equatable, Sendable {
        /// The whole Query string (one per statement of it), the Parse text, or empty for a FunctionCall.
        package var text: String
        /// Counted from 1 per session: one per Query string, Execute or FunctionCall.
        package var statementID: UInt64
        /// 1-based position of the statement inside its Query string (1 for the others).
        package var substatementID: UInt64
        package var source: Source
        /// The CommandComplete tag ("INSERT 0 1", "SELECT 3"), nil when it did not complete.
        package var tag: String?
        package var outcome: Outcome
        package var startedAt: Int64
        package var finishedAt: Int64
        /// ReadyForQuery's status byte after the statement: I, T or E.
        package var transactionStatus: UInt8?
        /// The Bind values of an extended-protocol statement as the audit record shows them
        /// (nil for a simple query, or when parameters are not logged).
        package var parameters: [String?]? = nil
        /// False: the statement's text is not known here, and `text` says so and names the
        /// prepared statement or portal (``StatementLifecycle/unknownStatementText(_:)``): it was
        /// prepared by SQL `PREPARE`, or its name was forgotten (``StatementLifecycle/maxNames``,
        /// or a `DEALLOCATE`/`DISCARD ALL` ran).
        package var textKnown = true
        /// A simple Query's statement that the session ended in: this record stands for it and
        /// for every later statement of the string, any of which the server may have run
        /// (the writer makes one record of each).
        package var throughEndOfString = false
        /// The process ID of the server backend the statement ran on (BackendKeyData), stamped
        /// by ``SessionMachine`` when the record is reported: under transaction pooling each
        /// transaction may run on another backend than the session's first.
        package var backendPID: Int32? = nil

        /// Rows from the tag's last number (INSERT oid rows, SELECT rows, COPY rows …), for
        /// the tags that report one (cmdtaglist.h: rowcount true).
        package var rows: Int64? {
            guard let tag, let last = tag.split(separator: " ").last, let value = Int64(last) else { return nil }
            return value
        }

        /// The command without its counts ("INSERT 0 1" → "INSERT").
        package var command: String? {
            guard let tag else { return nil }
            var words = tag.split(separator: " ")
            while let last = words.last, words.count > 1, Int64(last) != nil { words.removeLast() }
            return words.joined(separator: " ")
        }
    }

    private enum Op: Sendable {
        case query(text: String, statementID: UInt64, next: Int, failed: Bool, lastAt: Int64)
        /// Parse, Bind and Close change what names mean only once the server has done them
        /// (``settle(_:)``): a Parse of a name that exists fails (42P05) and leaves the old
        /// statement, and after an error the server skips everything up to Sync
        /// (postgres.c exec_parse_message, exec_bind_message, ignore_till_sync).
        case parse(name: String, text: String)
        case bind(portal: String, statement: String, parameters: [String?]?)
        case close(isStatement: Bool, name: String)
        /// The portal is looked up when the Execute reaches the head of the queue: every
        /// message before it has been answered then, and none after it, so `portals` holds the
        /// portal the server runs.
        case execute(portal: String, startedAt: Int64)
        case function(oid: UInt32, startedAt: Int64)
        case sync
        /// The client's CopyDone or CopyFail, queued before the server's CopyInResponse was seen.
        case copyEnd
        /// A Describe (or, counted by type alone, a Parse, Bind or Close): answered by
        /// RowDescription/NoData (ParseComplete, BindComplete, CloseComplete). An error before
        /// that answer is its error, and the server then skips to Sync, a simple Query between
        /// included (postgres.c: ignore_till_sync, set because doing_extended_query_message).
        case extended
    }

    /// Bounds: named statements and portals kept (the oldest name forgotten beyond it), texts kept.
    package static let maxNames = 4096
    package static let maxTextBytes = 1 << 20

    /// What the server owes replies to, in order: a client may pipeline up to
    /// ``SessionMachine/maxPendingOperations`` messages, and replies are taken from the front
    /// (``FIFOQueue``: O(1), where `Array.removeFirst` moved every other entry at each reply).
    private var ops = FIFOQueue<Op>()
    /// Statements' texts, with the order they were defined in (for forgetting the oldest), and
    /// portals, as the server has them: a Parse, Bind or Close counts once the server did it
    /// (``settle(_:)``), never when it failed or was skipped.
    private var names = Names(statements: [:], portals: [:], definitions: 0)
    private var finished: [Record] = []
    private var nextStatementID: UInt64 = 1
    /// After an extended-protocol error, client messages up to the next Sync are discarded by
    /// the server: they are not queued here either.
    /// CopyInResponse seen, the client's CopyDone/CopyFail not yet.
    /// The server's CopyInResponse was seen and the server has not yet ended the copy: how many
    /// Syncs the client sent in that window (the server ignores a Sync while in copy-in mode)
    /// and whether the client already sent its CopyDone/CopyFail.
    /// `exact`: the Execute that started it is the client's last (``sinceExecute`` describes
    /// what came after it).
    private var copyIn: (syncs: Int, clientEnded: Bool, exact: Bool)?
    /// What the client sent after its last Execute, in order: whether anything but Sync and
    /// Flush (CopyData, CopyDone, CopyFail, any other message), and how many Syncs came after
    /// such a message and before the client's CopyDone/CopyFail. It tells which Syncs a copy-in
    /// that the server ended with an error ignored (``copyInEnded(byError:raisedReadingCopy:)``).
    private var sinceExecute = (sawOther: false, syncsAfterOther: 0, ended: false)
    /// The replies can no longer be matched to what the client sent: a copy-in ended with the
    /// server's error while Syncs sent during the copy were outstanding and the proxy cannot
    /// tell whether the server read them in copy-in mode (ignored) or after the error
    /// (answered): ``copyInEnded(byError:raisedReadingCopy:)``. From then on the session is never
    /// at rest: its server connection is not reused, not released to a pool, and a query is
    /// cancelled when the session ends.
    package private(set) var lostTrack = false
    private var discardingUntilSync = false
    /// Records finished so far (for the disconnect event).
    package private(set) var statementCount: UInt64 = 0

    /// False: statements are counted, not kept (only the replies owed matter to the caller).
    private let keepsRecords: Bool

    package init(keepsRecords: Bool = true) {
        self.keepsRecords = keepsRecords
    }

    /// A message was sent whose ReadyForQuery has not arrived: the server owes replies.
    package var isAwaitingReplies: Bool { !ops.isEmpty }

    /// After an extended-protocol error the server skips to a Sync the client has not sent yet.
    package var awaitsClientSync: Bool { discardingUntilSync }

    /// Messages followed whose replies have not all arrived (the queue this keeps).
    package var pendingOperations: Int { ops.count }

    /// A longer text keeps its head and its tail (``CutText``).
    package static func bounded(_ text: String) -> String { CutText.bounded(text) }

    private mutating func takeStatementID() -> UInt64 {
        defer { nextStatementID += 1 }
        return nextStatementID
    }

    // MARK: Client messages

    package mutating func queryReceived(_ text: String, at time: Int64) {
        // After an extended-protocol error the server skips every message up to Sync, a
        // Query too (postgres.c PostgresMain, ignore_till_sync).
        otherMessageReceived()
        guard !discardingUntilSync else { return }
        ops.append(.query(text: Self.bounded(text), statementID: takeStatementID(), next: 1, failed: false, lastAt: time))
    }

    /// A Parse: the name means `text` once the server has prepared it (``settle(_:)``).
    package mutating func parseReceived(name: String, text: String) {
        otherMessageReceived()
        guard !discardingUntilSync else { return }
        ops.append(.parse(name: name, text: Self.bounded(text)))
    }

    /// `parameters`: the Bind values as the audit record shows them, when they are logged.
    package mutating func bindReceived(portal: String, statement: String, parameters: [String?]? = nil) {
        otherMessageReceived()
        guard !discardingUntilSync else { return }
        ops.append(.bind(portal: portal, statement: statement, parameters: parameters))
    }

    package mutating func executeReceived(portal: String, at time: Int64) {
        sinceExecute = (false, 0, false)
        guard !discardingUntilSync else { return }
        ops.append(.execute(portal: portal, startedAt: time))
    }

    /// Close (`S` statement or `P` portal).
    package mutating func closeReceived(isStatement: Bool, name: String) {
        otherMessageReceived()
        guard !discardingUntilSync else { return }
        ops.append(.close(isStatement: isStatement, name: name))
    }

    /// A Describe, or (counted by type alone) a Parse, Bind or Close: an ``Op/extended``.
    package mutating func extendedMessageReceived() {
        otherMessageReceived()
        guard !discardingUntilSync else { return }
        ops.append(.extended)
    }

    /// A client message other than Sync, Flush and those above (Describe, CopyData): it
    /// matters only for which Syncs a copy-in ignored.
    package mutating func otherMessageReceived() {
        sinceExecute.sawOther = true
    }

    package mutating func copyDataReceived() {
        otherMessageReceived()
    }

    package mutating func syncReceived() {
        if sinceExecute.sawOther && !sinceExecute.ended { sinceExecute.syncsAfterOther += 1 }
        // In copy-in mode the server ignores Sync (docs 55.2.6 COPY Operations); libpq sends one
        // right after the Execute of a COPY FROM STDIN and another after CopyDone/CopyFail.
        if var window = copyIn, !window.clientEnded {
            window.syncs += 1
            copyIn = window
            return
        }
        discardingUntilSync = false
        ops.append(.sync)
    }

    /// The server is in copy-in mode waiting for the client's data: its CopyInResponse came and
    /// the client's CopyDone or CopyFail has not been sent.
    package var awaitsCopyData: Bool { copyIn.map { !$0.clientEnded } ?? false }

    /// The client's CopyDone or CopyFail.
    package mutating func copyEndReceived() {
        otherMessageReceived()
        sinceExecute.ended = true
        if var window = copyIn, !window.clientEnded {
            window.clientEnded = true
            copyIn = window
        } else {
            ops.append(.copyEnd)
        }
    }

    /// The server's CopyInResponse for the operation at the head: the Syncs the client sent
    /// after it and before its CopyDone/CopyFail reach the server in copy-in mode and are
    /// ignored, so they are no batch ends.
    package mutating func copyInStarted() {
        var index = 1
        var syncs = 0
        // A later Execute reset what ``sinceExecute`` says about the messages after this one.
        var rest = Array(ops.elements)
        let exact = !rest.dropFirst().contains { if case .execute = $0 { true } else { false } }
        defer { ops.replaceAll(with: rest) }
        while index < rest.count {
            switch rest[index] {
            case .sync:
                rest.remove(at: index)
                syncs += 1
            case .copyEnd:
                rest.remove(at: index)
                copyIn = (syncs, true, exact)
                return
            default: index += 1
            }
        }
        copyIn = (syncs, false, exact)
    }

    /// The server ended a copy-in: with its CommandComplete (the Syncs of the window were
    /// ignored, as counted) or with an error. Which of the window's Syncs an error leaves
    /// unread follows from PostgreSQL's source: copyfromparse.c CopyGetData reads the client's
    /// messages one by one while it needs data, ignoring Sync and Flush ("for the convenience of
    /// client libraries (such as libpq) that may send those without noticing that the command
    /// they just sent was COPY") and holding cancel interrupts while it waits, so no error
    /// comes between reading a Sync and reading the next message; after an error, postgres.c
    /// skips every message up to the next Sync it reads (ignore_till_sync; CopyData, CopyDone
    /// and CopyFail are ignored there in any case), and answers that Sync and each later one.
    ///
    /// - Nothing but Syncs reached the server after the Execute: it cannot have read a copy
    ///   message, so the error came before the copy read anything (CopyFrom's checks, BEFORE
    ///   STATEMENT triggers, run after CopyInResponse) and no Sync of the window was read in
    ///   copy-in mode: they are ordinary Syncs, the first ends the skip.
    /// - `raisedReadingCopy` (CopyGetData's own error, CopyFail's 57014 among them, or one with
    ///   CopyFromErrorCallback's context, raised while the copy read rows): the server had read
    ///   a copy message, so every Sync sent before the first one was read and ignored — libpq's
    ///   order, one Sync right after the Execute, then data and CopyDone/CopyFail, then Sync.
    /// - Otherwise (a Sync between copy messages, or data sent and an error that does not say
    ///   where it came from): ambiguous, ``lostTrack``.
    private mutating func copyInEnded(byError: Bool, raisedReadingCopy: Bool = false) {
        guard let window = copyIn else { return }
        copyIn = nil
        guard byError, window.syncs > 0 else { return }
        guard window.exact, sinceExecute.syncsAfterOther == 0 else {
            lostTrack = true
            return
        }
        if !sinceExecute.sawOther {
            // Answered as outside a copy: right after the Execute, the head.
            var rest = Array(ops.elements)
            rest.insert(contentsOf: repeatElement(Op.sync, count: window.syncs), at: min(1, rest.count))
            ops.replaceAll(with: rest)
        } else if !raisedReadingCopy {
            lostTrack = true
        }
    }

    package mutating func functionCallReceived(oid: UInt32, at time: Int64) {
        otherMessageReceived()
        guard !discardingUntilSync else { return }
        ops.append(.function(oid: oid, startedAt: time))
    }

    // MARK: Server messages

    /// ParseComplete, BindComplete, CloseComplete of the client's own messages, RowDescription
    /// or NoData: the answer to the Parse, Bind, Close or Describe at the head, if one is there
    /// (replies come in message order; a Query's RowDescription finds its Query at the head).
    package mutating func extendedReplyReceived() {
        switch ops.first {
        case .parse?, .bind?, .close?, .extended?: settle(ops.popFirst())
        default: break
        }
    }

    /// An error now is an extended-protocol message's (the head's), so the server skips every
    /// message up to the next Sync, Queries and FunctionCalls included (postgres.c: after an
    /// error with doing_extended_query_message set, ignore_till_sync).
    package var errorSkipsToSync: Bool {
        switch ops.first {
        case .parse?, .bind?, .close?, .execute?, .extended?: true
        default: false
        }
    }

    package mutating func commandCompleteReceived(tag: String, at time: Int64) {
        copyInEnded(byError: false)
        dropSucceededParses()
        forgetNamesIfDeallocated(tag)
        guard let head = ops.first else { return }
        switch head {
        case .query(let text, let id, let next, let failed, let lastAt):
            finish(Record(text: text, statementID: id, substatementID: UInt64(next), source: .simpleQuery, tag: tag,
                          outcome: .ok, startedAt: lastAt, finishedAt: time))
            ops.updateFirst { $0 = .query(text: text, statementID: id, next: next + 1, failed: failed, lastAt: time) }
        case .execute(let name, let startedAt):
            // A portal recorded when an earlier Execute of it was suspended is not recorded again.
            let portal = names.portal(name)
            if !portal.recorded {
                finish(Record(text: portal.text, statementID: takeStatementID(), substatementID: 1, source: .extendedQuery, tag: tag,
                              outcome: .ok, startedAt: startedAt, finishedAt: time, parameters: portal.parameters,
                              textKnown: portal.textKnown))
            }
            _ = ops.popFirst()
        case .parse, .bind, .close, .function, .sync, .copyEnd, .extended:
            break
        }
    }

    package mutating func emptyQueryReceived(at time: Int64) {
        dropSucceededParses()
        guard let head = ops.first else { return }
        switch head {
        case .query(let text, let id, let next, let failed, _):
            ops.updateFirst { $0 = .query(text: text, statementID: id, next: next + 1, failed: failed, lastAt: time) }
        case .execute:
            _ = ops.popFirst()
        case .parse, .bind, .close, .function, .sync, .copyEnd, .extended:
            break
        }
    }

    /// An Execute with a row limit stopped early; the portal's statement has not finished.
    /// It is recorded now, once, as pgAudit logs a statement when its executor starts: the
    /// client may never fetch the rest (a write with RETURNING has already run whole), and the
    /// portal may live until its transaction ends. The record has no command tag, so no row
    /// count; later Executes of the portal (until a Bind replaces it) add no record unless
    /// they fail.
    package mutating func portalSuspendedReceived(at time: Int64) {
        dropSucceededParses()
        guard case .execute(let name, let startedAt)? = ops.first else { return }
        _ = ops.popFirst()
        var portal = names.portal(name)
        guard !portal.recorded else { return }
        portal.recorded = true
        if names.portals[name] != nil || names.portals.count < Self.maxNames { names.portals[name] = portal }
        finish(Record(text: portal.text, statementID: takeStatementID(), substatementID: 1, source: .extendedQuery, tag: nil,
                      outcome: .ok, startedAt: startedAt, finishedAt: time, parameters: portal.parameters,
                      textKnown: portal.textKnown))
    }

    /// An ErrorResponse (not a NoticeResponse). `refused`: the gate rewrote it into a refusal.
    /// `raisedReadingCopy`: the error says it was raised while a copy-in read the client's
    /// data (``copyInEnded(byError:raisedReadingCopy:)``).
    package mutating func errorReceived(sqlState: String, message: String, refused: Bool, at time: Int64,
                                        raisedReadingCopy: Bool = false) {
        let outcome: Outcome = refused ? .refused(sqlState: sqlState, message: message)
                                       : .failed(sqlState: sqlState, message: message)
        copyInEnded(byError: true, raisedReadingCopy: raisedReadingCopy)
        guard let head = ops.first else { return }
        switch head {
        case .query(let text, let id, let next, let failed, let lastAt):
            if !failed {
                finish(Record(text: text, statementID: id, substatementID: UInt64(next), source: .simpleQuery, tag: nil,
                              outcome: outcome, startedAt: lastAt, finishedAt: time))
            }
            ops.updateFirst { $0 = .query(text: text, statementID: id, next: next + 1, failed: true, lastAt: time) }
        case .function(let oid, let startedAt):
            finish(Record(text: "", statementID: takeStatementID(), substatementID: 1, source: .functionCall(oid: oid),
                          tag: nil, outcome: outcome, startedAt: startedAt, finishedAt: time))
            ops.updateFirst { $0 = .sync }  // settled; its ReadyForQuery still ends it
        case .sync, .copyEnd:
            // An error at Sync itself (a failed COMMIT of an implicit transaction): nothing to
            // attribute it to beyond the batch.
            break
        case .parse, .bind, .close, .execute, .extended:
            // Everything up to the next Sync is discarded by the server, a Query or
            // FunctionCall among it too, and the Parse, Bind or Close that failed or was
            // skipped changes no name. The statement that failed is the first Execute of the
            // batch, as the client meant it (its Parse or Bind may be the one that failed),
            // else the Parse that failed to prepare.
            let pending = ops.elements
            let end = (pending.firstIndex { if case .sync = $0 { return true } else { return false } } ?? pending.endIndex) - pending.startIndex
            let batch = Array(pending.prefix(end))
            var failed: (text: String, known: Bool, parameters: [String?]?, startedAt: Int64)?
            if let index = batch.firstIndex(where: { if case .execute = $0 { return true } else { return false } }),
               case .execute(let name, let startedAt) = batch[index] {
                let portal = meantPortal(name, after: batch[..<index])
                failed = (portal.text, portal.textKnown, portal.parameters, startedAt)
            }
            if failed == nil, case .parse(_, let text) = head { failed = (text, true, nil, time) }
            if let failed {
                finish(Record(text: failed.text, statementID: takeStatementID(), substatementID: 1, source: .extendedQuery,
                              tag: nil, outcome: outcome, startedAt: failed.startedAt, finishedAt: time, parameters: failed.parameters,
                              textKnown: failed.known))
            }
            if end == ops.count { discardingUntilSync = true }
            ops.removeFirst(end)
        }
    }

    /// The portal `name` as the client meant it when the messages `before` (sent after the
    /// last answered one) have all been done: a Bind of it there, with its statement as a Parse
    /// there (or else the server's) defines it; a Close there leaves it unknown.
    private func meantPortal(_ name: String, after before: ArraySlice<Op>) -> Portal {
        var index = before.endIndex
        while index > before.startIndex {
            index -= 1
            switch before[index] {
            case .bind(let portal, let statement, let parameters) where portal == name:
                let source = meantStatement(statement, after: before[..<index])
                return Portal(text: source.text, textKnown: source.known, parameters: parameters, order: 0)
            case .close(false, let portal) where portal == name:
                return Portal(text: Self.unknownPortalText(name), textKnown: false, order: 0)
            default:
                continue
            }
        }
        return names.portal(name)
    }

    private func meantStatement(_ name: String, after before: ArraySlice<Op>) -> (text: String, known: Bool) {
        for op in before.reversed() {
            switch op {
            case .parse(let statement, let text) where statement == name: return (text, true)
            case .close(true, let statement) where statement == name: return (Self.unknownStatementText(name), false)
            default: continue
            }
        }
        return names.statementText(name)
    }

    /// Ends a Query, FunctionCall or Sync batch; returns the records it finished.
    package mutating func readyForQueryReceived(status: UInt8, at time: Int64) -> [Record] {
        // No ReadyForQuery comes while a copy-in is running.
        copyIn = nil
        ending: while let head = ops.first {
            _ = ops.popFirst()
            switch head {
            case .query, .sync:
                break ending
            case .function(let oid, let startedAt):
                finish(Record(text: "", statementID: takeStatementID(), substatementID: 1, source: .functionCall(oid: oid),
                              tag: nil, outcome: .ok, startedAt: startedAt, finishedAt: time))
                break ending
            case .parse, .bind, .close:
                // No error came before this ReadyForQuery (it would have removed them): done.
                settle(head)
                continue ending
            case .execute, .copyEnd, .extended:
                continue ending
            }
        }
        guard !finished.isEmpty else { return [] }
        var out = finished
        finished.removeAll()
        for index in out.indices { out[index].transactionStatus = status }
        return out
    }

    /// The session ended: every statement already sent whose outcome never arrived, recorded
    /// as ``Outcome/disconnected`` (with records finished but not yet released by a
    /// ReadyForQuery, which keep their outcome). Nothing is pending afterwards.
    ///
    /// The server may have run any of them. A Query string's record stands for the statement
    /// it was in and every later one (``Record/throughEndOfString``). What an Execute ran is
    /// taken as if each Parse, Bind and Close before it succeeded, except a Parse of a name
    /// that exists, which fails (42P05) and makes the server skip to Sync.
    package mutating func sessionEnded(at time: Int64) -> [Record] {
        var skipping = false
        for op in ops.elements {
            switch op {
            case .query(let text, let id, let next, let failed, let lastAt):
                skipping = false
                if !failed {
                    finish(Record(text: text, statementID: id, substatementID: UInt64(next), source: .simpleQuery, tag: nil,
                                  outcome: .disconnected, startedAt: lastAt, finishedAt: time, throughEndOfString: true))
                }
            case .sync:
                skipping = false
            case .parse(let name, let text):
                if skipping { continue }
                if !name.isEmpty && names.statements[name] != nil { skipping = true } else { names.define(statement: name, text: text) }
            case .bind, .close:
                if !skipping { settle(op) }
            case .execute(let name, let startedAt):
                if skipping { continue }
                let portal = names.portal(name)
                if portal.recorded { continue }
                finish(Record(text: portal.text, statementID: takeStatementID(), substatementID: 1, source: .extendedQuery, tag: nil,
                              outcome: .disconnected, startedAt: startedAt, finishedAt: time, parameters: portal.parameters,
                              textKnown: portal.textKnown))
            case .function(let oid, let startedAt):
                if skipping { continue }
                finish(Record(text: "", statementID: takeStatementID(), substatementID: 1, source: .functionCall(oid: oid),
                              tag: nil, outcome: .disconnected, startedAt: startedAt, finishedAt: time))
            case .copyEnd, .extended:
                continue
            }
        }
        ops.removeAll()
        let out = finished
        finished.removeAll()
        return out
    }

    /// A Parse, Bind or Close the server did: the names mean what it made them mean.
    private mutating func settle(_ op: Op?) {
        switch op {
        case .parse(let name, let text)?: names.define(statement: name, text: text)
        case .bind(let portal, let statement, let parameters)?: names.bind(portal: portal, statement: statement, parameters: parameters)
        case .close(let isStatement, let name)?: names.close(isStatement: isStatement, name: name)
        case .query?, .execute?, .function?, .sync?, .copyEnd?, .extended?, nil: break
        }
    }

    /// `DEALLOCATE` (one name or ALL) and `DISCARD ALL` drop prepared statements by SQL; which
    /// one is not read here (the text is parsed on the writer thread), so every named statement
    /// is forgotten and later Executes of them say their text is not known rather than name a
    /// text the server may no longer have under that name (PostgreSQL docs: DEALLOCATE,
    /// DISCARD; prepare.c DropPreparedStatement, DropAllPreparedStatements).
    private mutating func forgetNamesIfDeallocated(_ tag: String) {
        guard tag.hasPrefix("DEALLOCATE") || tag == "DISCARD ALL" else { return }
        names.statements = names.statements.filter { $0.key.isEmpty }
    }

    /// A CommandComplete, EmptyQueryResponse or PortalSuspended: every Parse, Bind, Describe
    /// and Close before it was answered (replies come in order), whether or not their own
    /// answers were fed (the lifecycle's tests feed none).
    private mutating func dropSucceededParses() {
        while let head = ops.first {
            switch head {
            case .parse, .bind, .close, .extended: settle(ops.popFirst())
            default: return
            }
        }
    }

    private mutating func finish(_ record: Record) {
        statementCount += 1
        if keepsRecords { finished.append(record) }
    }
}
