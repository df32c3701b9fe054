import Policy
import Wire

/// Transaction pooling: protocol-level named prepared statements move with the client, as
/// PgBouncer 1.21+ does with `max_prepared_statements` (but under the client's own names), and
/// so does the unnamed one (``prepareUnnamedIfNeeded(into:)``).
///
/// Each client's named Parse messages are kept (name → text and parameter types, at most
/// ``TransactionPooling/maxPreparedStatements``; beyond it a new name pins instead). Each server
/// connection carries the set of statements prepared on it (``ServerStatements``, handed to the
/// link at release and back at attach). Before a Bind or Describe of a name the client prepared,
/// a server that lacks that exact statement gets `Close` + `Parse` of it first; before a named
/// Parse, `Close` of the name, since another client may have left one of that name there. A
/// name the client never prepared (or closed) that the server holds for someone else is closed
/// first, so the server answers 26000 as PostgreSQL would, and never runs another client's
/// statement. Only texts the read-only gate let through are kept, so nothing unjudged is ever
/// prepared on a server.
///
/// The replies to what the proxy slips in (CloseComplete, ParseComplete) must not reach the
/// client. Replies come in message order (55.2.3), so a FIFO of the Parse/Close messages sent
/// (the client's or the proxy's) and of the messages that end in ReadyForQuery tells which
/// completion is whose; after an ErrorResponse the server skips everything up to Sync, so the
/// entries before the next ReadyForQuery marker are dropped.
extension SessionMachine {
    /// What a prepared statement keeps of its text's effects (``PreparedStatement/pins``).
    static let keptWithStatements = pinnable.union(changesSettings)

    package struct PreparedStatement: Equatable, Sendable {
        package let query: String
        package let parameterTypes: [Int32]
        /// What running it pins (``SessionMachine/pinnable``) and whether it changes settings
        /// (``SessionMachine/changesSettings``), read from its text when it was parsed: noted
        /// again at each Bind, since it does again what it did (found in review: a
        /// `CREATE TEMP TABLE` prepared, unpinned by DISCARD TEMP — which keeps prepared
        /// statements — and then executed left a temporary table on a shared server; and a
        /// `set_config(…, false)` bound again in a later transaction left its setting there).
        package var pins: SessionStateEffects = []
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
    package struct ServerStatements: Sendable {
        var byName: [String: PreparedStatement] = [:]
        var unnamed = UnnamedStatement.none
        /// A SQL-level DEALLOCATE of a name the proxy cannot tell ran: names it does not know
        /// may still be prepared there (each is closed before use).
        var uncertain = false
        package init() {}
        package var count: Int { byName.count }
    }

    enum Completion: Equatable {
        /// A client's Parse or Close: its completion goes to the client.
        case client
        /// A client's Parse that recorded a new statement under this name: if it is never
        /// answered (it failed, or an earlier error made the server skip it), the statement
        /// does not exist and is forgotten, so a later Bind gets 26000 as from PostgreSQL.
        case clientParse(String)
        /// One the proxy slipped in: its completion is dropped.
        case injected
        /// A Parse the proxy slipped in: if never answered, the server lacks the statement.
        case injectedParse(String)
        /// A Query, FunctionCall or Sync: ends in ReadyForQuery.
        case readyForQuery
    }

    /// Run-length encoded FIFO, so a long pipeline of Syncs is one entry.
    mutating func pushCompletion(_ kind: Completion) {
        if let last = completions.indices.last, completions[last].kind == kind {
            completions[last].count += 1
        } else {
            completions.append((kind, 1))
        }
    }

    private mutating func popCompletion() -> Completion? {
        guard let first = completions.first else { return nil }
        if first.count == 1 { completions.removeFirst() } else { completions[0].count -= 1 }
        return first.kind
    }

    /// ParseComplete or CloseComplete: true when it answers a message the proxy sent itself.
    mutating func completionIsInjected() -> Bool {
        // Entries before it that end in ReadyForQuery cannot be: replies come in order.
        switch popCompletion() {
        case .injected?, .injectedParse?: true
        default: false
        }
    }

    /// An ErrorResponse: in the extended protocol the server skips to Sync, so the Parse and
    /// Close messages before the next ReadyForQuery marker will never be answered.
    mutating func completionsAfterError() {
        while let first = completions.first, first.kind != .readyForQuery {
            completions.removeFirst()
            switch first.kind {
            case .clientParse(let name) where name.isEmpty:
                // Failed (the old one dropped first) or skipped (the old one kept): forgotten
                // either way, as a named one is; the server's is no longer known.
                clientUnnamed = nil
                serverStatements.unnamed = .unknown
            case .injectedParse(let name) where name.isEmpty:
                serverStatements.unnamed = .unknown
            case .clientParse(let name):
                clientStatements[name] = nil
                serverStatements.byName[name] = nil
            case .injectedParse(let name):
                serverStatements.byName[name] = nil
            case .client, .injected, .readyForQuery:
                break
            }
        }
    }

    mutating func completionsAfterReadyForQuery() {
        completionsAfterError()
        _ = popCompletion()
        // At rest nothing is owed: start afresh (Syncs a copy-in ignored left markers behind).
        if !lifecycle.isAwaitingReplies { completions.removeAll() }
    }

    // MARK: Client messages

    /// Bind, Describe or Close in transaction pooling, whole at the front.
    mutating func preparedStatementStep(_ frame: MessageFrame, in buffer: ByteBuffer) -> Action {
        let payload = buffer.readableBytesView.dropFirst(5).prefix(frame.totalLength - 5)
        let name: String
        switch frame.type {
        case UInt8(ascii: "B"):
            // portal NUL statement NUL …
            guard let end = payload.firstIndex(of: 0) else { return .forwardToServer(frame.totalLength) }
            name = String(decoding: payload[(end + 1)...].prefix { $0 != 0 }, as: UTF8.self)
            // The portal runs the statement: its pins are taken again, before it goes up, and
            // held by the portal until its transaction ends (``portalPins``).
            if let statement = name.isEmpty ? clientUnnamed : clientStatements[name] {
                notePins(statement.pins)
                portalPins.formUnion(statement.pins.intersection(Self.pinnable))
                if !statement.pins.isDisjoint(with: Self.changesSettings) { settingsDirty = true }
            }
        case UInt8(ascii: "D"), UInt8(ascii: "C"):
            guard payload.first == FrontendMessage.DescribeTarget.statement.rawValue else {
                if frame.type == UInt8(ascii: "C") { pushCompletion(.client) }
                return .forwardToServer(frame.totalLength)
            }
            name = String(decoding: payload.dropFirst().prefix { $0 != 0 }, as: UTF8.self)
            if frame.type == UInt8(ascii: "C") {
                pushCompletion(.client)
                if name.isEmpty {
                    clientUnnamed = nil
                    serverStatements.unnamed = .none
                } else {
                    clientStatements[name] = nil
                    serverStatements.byName[name] = nil
                }
                return .forwardToServer(frame.totalLength)
            }
        default:
            return .forwardToServer(frame.totalLength)
        }
        var out = ByteBuffer()
        guard prepareIfNeeded(name, into: &out) else { return .forwardToServer(frame.totalLength) }
        out.writeBytes(buffer.readableBytesView.prefix(frame.totalLength))
        return .rewriteToServer(consume: frame.totalLength, bytes: out)
    }

    /// Encodes what the server needs before a message using statement `name`; false if nothing.
    private mutating func prepareIfNeeded(_ name: String, into out: inout ByteBuffer) -> Bool {
        guard !name.isEmpty else { return prepareUnnamedIfNeeded(into: &out) }
        if let statement = clientStatements[name] {
            guard serverStatements.byName[name] != statement else { return false }
            makeRoomOnServer(except: name, into: &out)
            FrontendMessage.close(.statement, name: name).encode(into: &out)
            FrontendMessage.parse(name: name, query: statement.query, parameterTypes: statement.parameterTypes).encode(into: &out)
            pushCompletion(.injected)
            pushCompletion(.injectedParse(name))
            serverStatements.byName[name] = statement
            return true
        }
        guard serverStatements.byName[name] != nil || serverStatements.uncertain else { return false }
        // Someone else's statement of that name: gone before this client can use it.
        FrontendMessage.close(.statement, name: name).encode(into: &out)
        pushCompletion(.injected)
        serverStatements.byName[name] = nil
        return true
    }

    /// The unnamed statement lives until the next Parse of "" or Query (protocol docs 55.2.3), so
    /// clients prepare it in one transaction and bind it in the next (libpq's PQprepare with an
    /// empty name, asyncpg without a statement cache: Parse/Describe/Sync, then Bind/Execute/Sync).
    /// A server that lacks the client's gets it parsed again first; a client that has none
    /// (never parsed, or a Query since) gets the server's closed, so it is answered 26000 as by
    /// PostgreSQL and never runs what another client left there.
    private mutating func prepareUnnamedIfNeeded(into out: inout ByteBuffer) -> Bool {
        if let statement = clientUnnamed {
            guard serverStatements.unnamed != .statement(statement) else { return false }
            FrontendMessage.parse(name: "", query: statement.query, parameterTypes: statement.parameterTypes).encode(into: &out)
            pushCompletion(.injectedParse(""))
            serverStatements.unnamed = .statement(statement)
            return true
        }
        guard serverStatements.unnamed != .none else { return false }
        FrontendMessage.close(.statement, name: "").encode(into: &out)
        pushCompletion(.injected)
        serverStatements.unnamed = .none
        return true
    }

    /// A Parse of the unnamed statement in transaction pooling, judged (`pins`: what its text
    /// pins); its completion is owed.
    mutating func poolingUnnamedParse(_ message: FrontendMessage, allowed: Bool, pins: SessionStateEffects) {
        guard allowed, case .parse(_, let query, let types) = message else {
            // A refusal's stand-in: PostgreSQL would have dropped the old one before failing.
            clientUnnamed = nil
            serverStatements.unnamed = .unknown
            pushCompletion(.client)
            return
        }
        let statement = PreparedStatement(query: query, parameterTypes: types, pins: pins.intersection(Self.keptWithStatements))
        clientUnnamed = statement
        serverStatements.unnamed = .statement(statement)
        pushCompletion(.clientParse(""))
    }

    /// A Query in transaction pooling: it destroys the unnamed statement (postgres.c
    /// exec_simple_query → drop_unnamed_stmt), whatever becomes of it.
    mutating func poolingQuerySent(allowed: Bool) {
        clientUnnamed = nil
        serverStatements.unnamed = allowed ? .none : .unknown
    }

    /// A server connection keeps at most `max_prepared_statements` of the statements clients
    /// prepared through the proxy (PgBouncer bounds its servers the same way): beyond it one
    /// other is closed, so a succession of clients with statements of their own cannot make a
    /// backend hold ever more plans. An evicted statement is prepared again when next used.
    private mutating func makeRoomOnServer(except name: String, into out: inout ByteBuffer) {
        guard let pooling = configuration.transactionPooling,
              serverStatements.byName.count >= max(pooling.maxPreparedStatements, 1) else { return }
        // Another client's first, then any but the one being prepared.
        guard let victim = serverStatements.byName.keys.first(where: { $0 != name && clientStatements[$0] == nil })
                ?? serverStatements.byName.keys.first(where: { $0 != name }) else { return }
        FrontendMessage.close(.statement, name: victim).encode(into: &out)
        pushCompletion(.injected)
        serverStatements.byName[victim] = nil
    }

    /// A Parse in transaction pooling, judged: `sent` is what goes up in its place (the
    /// client's own Parse re-encoded, or the gate's stand-in); `allowed` when it is the client's;
    /// `pins`: what its text pins.
    mutating func poolingParse(_ message: FrontendMessage, sent: ByteBuffer, allowed: Bool, pins: SessionStateEffects,
                               consume: Int) -> Action {
        guard case .parse(let name, let query, let types) = message, !name.isEmpty,
              let pooling = configuration.transactionPooling else {
            pushCompletion(.client)
            return allowed ? .rewriteToServer(consume: consume, bytes: sent) : .replaceToServer(consume: consume, bytes: sent)
        }
        var out = ByteBuffer()
        var completion = Completion.client
        if clientStatements[name] != nil {
            // The client prepares a name it already has: the server must say 42P05, as
            // PostgreSQL would, so its statement is made present first.
            _ = prepareIfNeeded(name, into: &out)
        } else {
            // Another client may have left a statement of this name on this server.
            FrontendMessage.close(.statement, name: name).encode(into: &out)
            pushCompletion(.injected)
            serverStatements.byName[name] = nil
            if allowed {
                let statement = PreparedStatement(query: query, parameterTypes: types, pins: pins.intersection(Self.keptWithStatements))
                if clientStatements.count < pooling.maxPreparedStatements {
                    makeRoomOnServer(except: name, into: &out)
                    clientStatements[name] = statement
                    serverStatements.byName[name] = statement
                    completion = .clientParse(name)
                } else {
                    // Over the bound: the statement stays on this server only.
                    notePins(.namedProtocolStatement)
                }
            }
        }
        pushCompletion(completion)
        out.writeBytes(sent.readableBytesView)
        // A refusal's stand-in stays a replacement (the shell counts refusals by it).
        return allowed ? .rewriteToServer(consume: consume, bytes: out) : .replaceToServer(consume: consume, bytes: out)
    }

    /// DEALLOCATE ALL and DISCARD ALL drop every named prepared statement (protocol-level too);
    /// DEALLOCATE of one name drops one the proxy cannot name, so the server's set is forgotten
    /// (each statement is prepared again, after a Close, when next used). Neither touches the
    /// unnamed statement (prepare.c DropAllPreparedStatements walks only the prepared_queries
    /// hash; postgres.c keeps the unnamed one in unnamed_stmt_psrc): run from a named statement
    /// (a Query would destroy it itself, ``poolingQuerySent(allowed:)``) they leave it as it was
    /// (found in review: the server was recorded as having none, and the next Bind of the
    /// unnamed statement without a Parse ran the one another client had left there).
    mutating func preparedStatementsCommandComplete(_ tag: String) {
        switch tag {
        case "DEALLOCATE ALL", "DISCARD ALL":
            clientStatements.removeAll()
            let unnamed = serverStatements.unnamed
            serverStatements = ServerStatements()
            serverStatements.unnamed = unnamed
        case "DEALLOCATE":
            serverStatements.byName.removeAll()
            serverStatements.uncertain = true
        default:
            break
        }
    }
}
