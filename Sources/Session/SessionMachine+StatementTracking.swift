import Policy
import Wire

/// Transaction pooling: what the proxy knows of prepared statements — the client's, as
/// PostgreSQL holds them for its session, and the attached server's — and how that knowledge
/// follows the server's answers (SessionMachine+PreparedStatements.swift says what is slipped in).
///
/// Two views are kept. ``SessionMachine/statements`` is the *projection*: what will be true once
/// everything sent so far is answered as expected; the next message is planned from it (a Bind
/// pipelined after its Parse needs nothing slipped in). ``SessionMachine/confirmedStatements``
/// is what the answers so far make true: a Parse or Close changes it only when its ParseComplete
/// or CloseComplete comes. After an error the server skips every message up to Sync
/// (postgres.c: `ignore_till_sync`, Close included), so the changes of the messages before the
/// next ReadyForQuery marker are dropped and the projection is the confirmed view with the
/// changes still owed replayed on it (found in review: a Close skipped after an error was
/// recorded as done, and the next client to get that server bound the statement it had never
/// prepared — PostgreSQL directly: 26000; the proxy's own Closes, evictions included, had the
/// same fault).
extension SessionMachine {
    /// A statement name as PostgreSQL keys it: prepare.c keeps prepared statements in a hash
    /// table created with `keysize = NAMEDATALEN` and `HASH_STRINGS` (InitQueryHashTable), so
    /// dynahash.c copies the key with strlcpy, hashes and compares only its first
    /// NAMEDATALEN - 1 = 63 bytes (hashfn.c string_hash: `strnlen(key, keysize - 1)`,
    /// string_compare: `strncmp(key1, key2, keysize - 1)`) — cut at a byte, not a character.
    /// Two names equal in their first 63 bytes are one statement (found in review: a client
    /// bound `ppp…pC`, a name it never prepared, and ran another client's `ppp…pA`).
    ///
    /// Those are the bytes *after* pq_getmsgstring converted the name from the client encoding
    /// (mbutils.c pg_client_to_server). A name whose first 63 bytes are ASCII is the same bytes
    /// in every encoding, so its key is exact; any other name is keyed as sent but never
    /// trusted across clients (``isASCII``; SessionMachine+PreparedStatements.swift).
    package struct StatementName: Hashable, Sendable, ExpressibleByStringLiteral, CustomStringConvertible {
        /// NAMEDATALEN - 1 (pg_config_manual.h).
        package static let significantBytes = 63

        /// The first 63 bytes of the name as sent.
        package let bytes: [UInt8]

        package init(_ name: some Collection<UInt8>) {
            bytes = Array(name.prefix(Self.significantBytes))
        }

        package init(stringLiteral name: String) {
            self.init(Array(name.utf8))
        }

        /// The unnamed statement.
        package var isEmpty: Bool { bytes.isEmpty }

        /// Its key bytes are ASCII, which every client encoding PostgreSQL supports sends and
        /// converts as itself: the server's key is these bytes whichever client sent them and
        /// whatever its client_encoding. A name with other bytes is keyed by the server after
        /// conversion (LATIN1 `\xe9` and UTF-8 `\xc3\xa9` are one name to a UTF8 server, and a
        /// conversion can move what the 63-byte cut keeps), so the proxy cannot tell which
        /// names another client's are equal to: such names pin their session
        /// (``SessionStateEffects/namedProtocolStatement``) and are never recorded on a server.
        package var isASCII: Bool { bytes.allSatisfy { $0 < 0x80 } }

        package var description: String { String(decoding: bytes, as: UTF8.self) }
    }

    /// What a prepared statement keeps of its text's effects (``PreparedStatement/pins``).
    static let keptWithStatements = pinnable.union(changesSettings)

    package struct PreparedStatement: Equatable, Sendable {
        /// The text as the client sent it, in its client_encoding: prepared again byte for byte.
        package let query: [UInt8]
        package let parameterTypes: [Int32]
        /// What keeping it costs: the text and the parameter types (up to 65,535 of them).
        var keptBytes: Int { query.count + 4 * parameterTypes.count }
        /// What running it pins (``SessionMachine/pinnable``) and whether it changes settings
        /// (``SessionMachine/changesSettings``), read from its text when it was parsed: noted
        /// again at each Bind, since it does again what it did (found in review: a
        /// `CREATE TEMP TABLE` prepared, unpinned by DISCARD TEMP — which keeps prepared
        /// statements — and then executed left a temporary table on a shared server; and a
        /// `set_config(…, false)` bound again in a later transaction left its setting there).
        package var pins: SessionStateEffects = []

        /// The Parse that prepares it under `name`.
        func parse(_ name: StatementName) -> FrontendMessage.RawParse {
            FrontendMessage.RawParse(name: name.bytes, query: query, parameterTypes: parameterTypes)
        }
    }

    /// A server connection's unnamed statement, by the proxy's tracking.
    package enum UnnamedStatement: Equatable, Sendable {
        /// None (a new backend, or destroyed by a Query or Close).
        case none
        /// This text, prepared by the client attached now (by it or by the proxy for it).
        case statement(PreparedStatement)
        /// Perhaps one, perhaps another client's: a connection handed back by the pool (the
        /// proxy's own settings queries may have destroyed it, or another client left one).
        case unknown
    }

    /// What one server connection has prepared under each name (by the proxy's tracking).
    package struct ServerStatements: Sendable, Equatable {
        /// ASCII names only (``StatementName/isASCII``).
        var byName: [StatementName: PreparedStatement] = [:]
        var unnamed = UnnamedStatement.none
        /// A SQL-level DEALLOCATE of a name the proxy cannot tell ran, or the proxy lost track
        /// of what was answered: names it does not know may still be prepared there (each is
        /// closed before use).
        var uncertain = false
        package init() {}
        package var count: Int { byName.count }
    }

    /// The client's statements and the attached server's, as one view.
    struct StatementTracking: Equatable {
        /// The client's named statements whose texts are kept (at most
        /// ``TransactionPooling/maxPreparedStatements``): prepared wherever the client runs.
        var client: [StatementName: PreparedStatement] = [:]
        /// The client's named statements whose texts are not kept (prepared over the bound, or
        /// under a name that is not ASCII): they exist on the server the session is pinned to,
        /// so nothing is slipped in before using them, and a Parse of one answers 42P05.
        var clientPinned: Set<StatementName> = []
        /// Names the client prepared (or tried to) with SQL PREPARE: on its pinned server, never
        /// closed as another client's (SessionMachine+SQLStatementNames.swift).
        var clientSQL: Set<StatementName> = []
        /// The client's unnamed statement, as PostgreSQL would hold it for this session (the
        /// last Parse of "" since the last Query, Close of it, or failure).
        var clientUnnamed: PreparedStatement?
        var server = ServerStatements()

        /// A change whose completion came (or, for the projection, that was sent).
        mutating func apply(_ change: StatementChange) {
            switch change {
            case .clientParse(let name, let statement?):
                client[name] = statement
                if name.isASCII { server.byName[name] = statement }
            case .clientParse(let name, nil):
                clientPinned.insert(name)
            case .clientParseUnnamed(let statement):
                // A refusal's stand-in (nil): PostgreSQL drops the old one before it fails
                // (postgres.c exec_parse_message: drop_unnamed_stmt first).
                clientUnnamed = statement
                server.unnamed = statement.map { .statement($0) } ?? .unknown
            case .clientClose(let name) where name.isEmpty:
                clientUnnamed = nil
                server.unnamed = .none
            case .clientClose(let name):
                client[name] = nil
                clientPinned.remove(name)
                server.byName[name] = nil
            case .injectedParse(let name, let statement) where name.isEmpty:
                server.unnamed = .statement(statement)
            case .injectedParse(let name, let statement):
                server.byName[name] = statement
            case .injectedClose(let name) where name.isEmpty:
                server.unnamed = .none
            case .injectedClose(let name):
                server.byName[name] = nil
            case .allNamedDropped:
                client.removeAll()
                clientPinned.removeAll()
                clientSQL.removeAll()
                let unnamed = server.unnamed
                server = ServerStatements()
                server.unnamed = unnamed
            }
        }

        /// A change whose message failed or was skipped (an error before its completion).
        /// A named Parse leaves things as they were either way (a failing one does not touch an
        /// existing statement: StorePreparedStatement comes last), as does a Close (it cannot
        /// fail). A Parse of "" that failed dropped the old unnamed statement first, one that
        /// was skipped kept it: which of the two is not known, so the client's is forgotten
        /// (its next Bind gets 26000) and the server's is unknown.
        mutating func dropped(_ change: StatementChange) {
            switch change {
            case .clientParseUnnamed:
                clientUnnamed = nil
                server.unnamed = .unknown
            case .injectedParse(let name, _) where name.isEmpty:
                server.unnamed = .unknown
            case .clientParse, .clientClose, .injectedParse, .injectedClose, .allNamedDropped:
                break
            }
        }

        /// A Query destroys the unnamed statement (postgres.c exec_simple_query →
        /// drop_unnamed_stmt), whatever becomes of it; `allowed`: it is the client's own (a
        /// refusal's stand-in leaves the server's unknown).
        mutating func queryRan(allowed: Bool) {
            clientUnnamed = nil
            server.unnamed = allowed ? .none : .unknown
        }
    }

    /// What a Parse or Close makes true once it completes.
    enum StatementChange: Equatable {
        /// The client's Parse of a new named statement: kept (`statement`), or over the bound
        /// or not ASCII (nil: on the pinned server only).
        case clientParse(StatementName, PreparedStatement?)
        /// The client's Parse of the unnamed statement (nil: a refusal's stand-in).
        case clientParseUnnamed(PreparedStatement?)
        /// The client's Close of a statement ("" for the unnamed one).
        case clientClose(StatementName)
        /// The proxy's Parse of a client's statement.
        case injectedParse(StatementName, PreparedStatement)
        /// The proxy's Close (another client's statement, or one evicted to make room).
        case injectedClose(StatementName)
        /// The client's DEALLOCATE ALL or DISCARD ALL in a Query: every named statement gone,
        /// protocol-level ones too (prepare.c DropAllPreparedStatements), the unnamed one kept
        /// (``SessionMachine/preparedStatementsCommandComplete(_:)``). Confirmed by its
        /// CommandComplete; one that fails (25P02 in an aborted transaction, 25001 for DISCARD
        /// ALL in a transaction block) or that the server never reaches (an earlier statement
        /// of its string failed) drops nothing, and the error drops the change (``dropped(_:)``).
        case allNamedDropped
    }

    enum Completion: Equatable {
        /// A Parse or Close: `change` is what its completion makes true (nil: nothing
        /// tracked); `injected`: the proxy's own, whose completion the client never sees.
        case completion(StatementChange?, injected: Bool)
        /// A Query (`query`: whether it is the client's own, ``StatementTracking/queryRan(allowed:)``)
        /// or FunctionCall (nil): ends in ReadyForQuery, unless an extended-protocol error before
        /// it makes the server skip it (``completionsAfterError(skipsToSync:)``).
        case readyForQuery(query: Bool?)
        /// A Sync: ends in ReadyForQuery, always (the end of an error's skip).
        case sync
    }

    /// Completions owed that the client may have outstanding before it is no longer read
    /// (backpressure, ``isHoldingClientMessages``): an error replays the changes still owed
    /// onto the confirmed view (``reproject()``), so their number bounds that work.
    static let maxPendingCompletions = 4_096

    /// A Parse or Close sent: its change is projected now and confirmed by its completion.
    mutating func expect(_ change: StatementChange?, injected: Bool) {
        if let change { statements.apply(change) }
        pushCompletion(.completion(change, injected: injected))
    }

    /// Run-length encoded FIFO, so a long pipeline of Syncs is one entry.
    mutating func pushCompletion(_ kind: Completion) {
        if !completions.incrementLast(ifKind: kind) { completions.append((kind, 1)) }
    }

    private mutating func popCompletion() -> Completion? {
        completions.popOne()
    }

    /// ParseComplete or CloseComplete: true when it answers a message the proxy sent itself.
    /// What that message changes is confirmed now.
    mutating func completionIsInjected() -> Bool {
        // Entries before it that end in ReadyForQuery cannot be: replies come in order.
        guard case .completion(let change, let injected)? = popCompletion() else { return false }
        if let change { confirmedStatements.apply(change) }
        return injected
    }

    /// An ErrorResponse: in the extended protocol the server skips to Sync, so the Parse and
    /// Close messages before the next ReadyForQuery marker will never be answered, and what
    /// they would have changed did not happen. `skipsToSync`: the error is an extended-protocol
    /// message's (``StatementLifecycle/errorSkipsToSync``), so a Query or FunctionCall sent
    /// before the next Sync is skipped as well, and answers nothing (postgres.c: ignore_till_sync
    /// skips every message but Sync; found by the differential fuzzer: after a failed Describe,
    /// a pipelined Query's marker waited for a ReadyForQuery that never came, and the client
    /// got the proxy's CloseComplete for its ParseComplete). Otherwise the error is the Query's
    /// or FunctionCall's own and its ReadyForQuery still comes.
    mutating func completionsAfterError(skipsToSync: Bool = false) {
        var changed = false
        skipping: while let first = completions.first {
            switch first.kind {
            case .completion(let change, _):
                completions.removeFirst()
                // (An entry of several identical completions goes as a whole: none was answered.)
                if let change {
                    confirmedStatements.dropped(change)
                    changed = true
                }
            case .readyForQuery(let query) where skipsToSync:
                completions.removeFirst()
                // A skipped Query did not destroy the unnamed statement after all.
                if query != nil { changed = true }
            case .readyForQuery, .sync:
                break skipping
            }
        }
        if changed { reproject() }
    }

    /// The projection again: the confirmed view with every change still owed.
    mutating func reproject() {
        statements = confirmedStatements
        for (kind, _) in completions.elements {
            switch kind {
            case .completion(let change?, _): statements.apply(change)
            case .readyForQuery(let query?): statements.queryRan(allowed: query)
            case .completion(nil, _), .readyForQuery(nil), .sync: break
            }
        }
    }

    mutating func completionsAfterReadyForQuery() {
        completionsAfterError()
        if case .readyForQuery(let query?)? = popCompletion() { confirmedStatements.queryRan(allowed: query) }
        // At rest nothing is owed: start afresh (Syncs a copy-in ignored left markers behind).
        guard !lifecycle.isAwaitingReplies else { return }
        let lostTrack = completions.elements.contains { if case .completion(_?, _) = $0.kind { true } else { false } }
        completions.removeAll()
        if lostTrack {
            // Changes never answered: the server may or may not have made them.
            confirmedStatements.server.uncertain = true
            if confirmedStatements.server.unnamed != .none { confirmedStatements.server.unnamed = .unknown }
        }
        statements = confirmedStatements
    }

    /// Both views at once: a change the server has made already (a reply the proxy read, its own
    /// query, a server attached at rest).
    mutating func changeConfirmed(_ change: (inout StatementTracking) -> Void) {
        change(&confirmedStatements)
        reproject()
    }

    /// Transaction pooling: the client's named statements whose texts are kept.
    package var clientStatements: [StatementName: PreparedStatement] { statements.client }
    /// Transaction pooling: the client's named statements on its pinned server only.
    package var clientPinnedStatements: Set<StatementName> { statements.clientPinned }
    /// Transaction pooling: the client's unnamed statement.
    package var clientUnnamed: PreparedStatement? { statements.clientUnnamed }
}

/// The completions owed, first in first out (``FIFOQueue``: O(1) removal from the front): a
/// client pipelining Parse and Sync alternately fills up to ``SessionMachine/maxPendingCompletions``
/// entries, and `Array.removeFirst` would move all the others at each reply (found in review:
/// quadratic, on the loop). Run-length encoded: each entry counts identical completions.
struct CompletionQueue {
    typealias Entry = (kind: SessionMachine.Completion, count: Int)
    private var queue = FIFOQueue<Entry>()

    var first: Entry? { queue.first }
    var count: Int { queue.count }
    var elements: ArraySlice<Entry> { queue.elements }

    mutating func append(_ entry: Entry) { queue.append(entry) }

    /// Adds one to the last entry when it is of `kind`.
    mutating func incrementLast(ifKind kind: SessionMachine.Completion) -> Bool {
        guard let last = queue.elements.last, last.kind == kind else { return false }
        return queue.updateLast { $0.count += 1 }
    }

    /// One completion from the front entry (the entry goes when its count reaches zero).
    mutating func popOne() -> SessionMachine.Completion? {
        guard let first = queue.first else { return nil }
        if first.count > 1 { queue.updateFirst { $0.count -= 1 } } else { _ = queue.popFirst() }
        return first.kind
    }

    /// The whole front entry.
    mutating func removeFirst() { _ = queue.popFirst() }

    mutating func removeAll() { queue.removeAll() }
}
