import Policy
import Wire

/// Transaction pooling: protocol-level named prepared statements move with the client, as
/// PgBouncer 1.21+ does with `max_prepared_statements` (but under the client's own names), and
/// so does the unnamed one (``prepareUnnamedIfNeeded(into:)``).
///
/// Each client's named Parse messages are kept (name → text and parameter types, at most
/// ``TransactionPooling/maxPreparedStatements``; beyond it a new name pins instead, and so does
/// a name that is not ASCII, ``StatementName/isASCII``). Each server connection carries the set
/// of statements prepared on it (``ServerStatements``, handed to the link at release and back
/// at attach). Before a Bind or Describe of a name the client prepared, a server that lacks
/// that exact statement gets `Close` + `Parse` of it first; before a named Parse of a new name,
/// `Close` of the name, since another client may have left one of that name there. A name the
/// client never prepared (or closed) that the server holds for someone else is closed first,
/// so the server answers 26000 as PostgreSQL would, and never runs another client's
/// statement. Names are compared as PostgreSQL compares them (``StatementName``) and texts kept
/// and sent as the client's bytes. Only texts the read-only gate let through are kept, so
/// nothing unjudged is ever prepared on a server.
///
/// The replies to what the proxy slips in (CloseComplete, ParseComplete) must not reach the
/// client. Replies come in message order (55.2.3), so a FIFO of the Parse/Close messages sent
/// (the client's or the proxy's) and of the messages that end in ReadyForQuery tells which
/// completion is whose; after an ErrorResponse the server skips everything up to Sync, so the
/// entries before the next ReadyForQuery marker are dropped — and what they would have changed
/// with them (SessionMachine+StatementTracking.swift).
extension SessionMachine {
    // MARK: Client messages

    /// Bind, Describe or Close in transaction pooling, whole at the front.
    mutating func preparedStatementStep(_ frame: MessageFrame, in buffer: ByteBuffer) -> Action {
        let payload = buffer.readableBytesView.dropFirst(5).prefix(frame.totalLength - 5)
        let name: StatementName
        switch frame.type {
        case UInt8(ascii: "B"):
            // portal NUL statement NUL …
            guard let end = payload.firstIndex(of: 0) else { return .forwardToServer(frame.totalLength) }
            name = StatementName(payload[(end + 1)...].prefix { $0 != 0 })
            // The portal runs the statement: its pins are taken again, before it goes up, and
            // held by the portal until its transaction ends (``portalPins``).
            if let statement = name.isEmpty ? statements.clientUnnamed : statements.client[name] {
                notePins(statement.pins)
                portalPins.formUnion(statement.pins.intersection(Self.pinnable))
                if !statement.pins.isDisjoint(with: Self.changesSettings) { settingsDirty = true }
            }
        case UInt8(ascii: "D"), UInt8(ascii: "C"):
            guard payload.first == FrontendMessage.DescribeTarget.statement.rawValue else {
                if frame.type == UInt8(ascii: "C") { expect(nil, injected: false) }
                return .forwardToServer(frame.totalLength)
            }
            name = StatementName(payload.dropFirst().prefix { $0 != 0 })
            if frame.type == UInt8(ascii: "C") {
                // Done when its CloseComplete comes: a Close the server skips after an error
                // leaves the statement where it was (postgres.c, case 'C': DropPreparedStatement
                // or drop_unnamed_stmt; skipped with everything else until Sync).
                expect(.clientClose(name), injected: false)
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
    mutating func prepareIfNeeded(_ name: StatementName, into out: inout ByteBuffer) -> Bool {
        guard !name.isEmpty else { return prepareUnnamedIfNeeded(into: &out) }
        // A name that is not ASCII is never another client's on a shared server (it pins, and a
        // pinned server is reset before anyone else gets it); the client's own over the bound
        // are on its pinned server.
        guard name.isASCII, !statements.clientPinned.contains(name) else { return false }
        if let statement = statements.client[name] {
            guard statements.server.byName[name] != statement else { return false }
            makeRoomOnServer(except: name, adding: statement.keptBytes, into: &out)
            FrontendMessage.encodeClose(.statement, name: name.bytes, into: &out)
            expect(.injectedClose(name), injected: true)
            statement.parse(name).encode(into: &out)
            expect(.injectedParse(name, statement), injected: true)
            return true
        }
        // An uncertain server may hold anything, but not someone else's statement under a name
        // this client prepared in SQL (its session is pinned: nobody else has had the server).
        guard statements.server.byName[name] != nil || (statements.server.uncertain && !statements.clientSQL.contains(name)) else {
            return false
        }
        // Someone else's statement of that name: gone before this client can use it.
        FrontendMessage.encodeClose(.statement, name: name.bytes, into: &out)
        expect(.injectedClose(name), injected: true)
        return true
    }

    /// The unnamed statement lives until the next Parse of "" or Query (protocol docs 55.2.3), so
    /// clients prepare it in one transaction and bind it in the next (libpq's PQprepare with an
    /// empty name, asyncpg without a statement cache: Parse/Describe/Sync, then Bind/Execute/Sync).
    /// A server that lacks the client's gets it parsed again first; a client that has none
    /// (never parsed, or a Query since) gets the server's closed, so it is answered 26000 as by
    /// PostgreSQL and never runs what another client left there.
    private mutating func prepareUnnamedIfNeeded(into out: inout ByteBuffer) -> Bool {
        if let statement = statements.clientUnnamed {
            guard statements.server.unnamed != .statement(statement) else { return false }
            statement.parse("").encode(into: &out)
            expect(.injectedParse("", statement), injected: true)
            return true
        }
        guard statements.server.unnamed != .none else { return false }
        FrontendMessage.encodeClose(.statement, name: [], into: &out)
        expect(.injectedClose(""), injected: true)
        return true
    }

    /// A Parse of the unnamed statement in transaction pooling, judged (`pins`: what its text
    /// pins); its completion is owed.
    mutating func poolingUnnamedParse(_ parse: FrontendMessage.RawParse, allowed: Bool, pins: SessionStateEffects) {
        guard allowed else {
            // A refusal's stand-in: PostgreSQL would have dropped the old one before failing.
            expect(.clientParseUnnamed(nil), injected: false)
            return
        }
        let statement = PreparedStatement(query: parse.query, parameterTypes: parse.parameterTypes,
                                          pins: pins.intersection(Self.keptWithStatements))
        expect(.clientParseUnnamed(statement), injected: false)
    }

    /// A Query in transaction pooling: it destroys the unnamed statement (postgres.c
    /// exec_simple_query → drop_unnamed_stmt), whatever becomes of it; it ends in ReadyForQuery.
    /// `dropsAll`: how many of its statements are DEALLOCATE ALL or DISCARD ALL (the
    /// classifier's ``SessionStateEffects/deallocateAll`` and ``SessionStateEffects/discardAll``).
    /// Their change is projected now, so that messages pipelined after the Query are planned
    /// from the client's statements as PostgreSQL will hold them when it reaches them: a Bind of
    /// a dropped name must get 26000, not a Parse slipped in before it (found by the
    /// differential fuzzer: `Query("DEALLOCATE ALL")`, Bind s1, Execute, Sync in one write ran
    /// the INSERT s1 had been). The confirmed view changes at the CommandComplete, and an error
    /// before it drops the change, as for a Parse or Close.
    ///
    /// A Query sent while the server skips to Sync (an extended-protocol error already came,
    /// its Sync not yet sent) is skipped whole (postgres.c: ignore_till_sync): it changes
    /// nothing and gets no ReadyForQuery, so nothing is owed for it.
    mutating func poolingQuerySent(allowed: Bool, dropsAll: Int = 0) {
        guard !lifecycle.awaitsClientSync else { return }
        for _ in 0..<(allowed ? dropsAll : 0) { expect(.allNamedDropped, injected: false) }
        statements.queryRan(allowed: allowed)
        pushCompletion(.readyForQuery(query: allowed))
    }

    /// A server connection keeps at most `max_prepared_statements` of the statements clients
    /// prepared through the proxy (PgBouncer bounds its servers the same way), and at most
    /// ``maxKeptStatementBytes`` of their text: beyond either, others are closed, so a succession
    /// of clients with statements of their own cannot make a backend hold ever more plans, nor
    /// the proxy ever more text with the connection (found in review: 200 statements of 1 MiB
    /// from successive clients stayed with each pooled connection, counted nowhere). An evicted
    /// statement is prepared again when next used.
    private mutating func makeRoomOnServer(except name: StatementName, adding bytes: Int, into out: inout ByteBuffer) {
        guard let pooling = configuration.transactionPooling else { return }
        var count = statements.server.byName.count
        var total = statements.server.byName.values.reduce(0) { $0 + $1.keptBytes }
        var closed: Set<StatementName> = []
        while count >= max(pooling.maxPreparedStatements, 1) || (count > 0 && total + bytes > Self.maxKeptStatementBytes) {
            // Another client's first, then any but the one being prepared.
            let candidates = statements.server.byName.keys.filter { $0 != name && !closed.contains($0) }
            guard let victim = candidates.first(where: { statements.client[$0] == nil }) ?? candidates.first else { return }
            // Its size before the Close is recorded (the view drops it at once).
            total -= statements.server.byName[victim]?.keptBytes ?? 0
            count -= 1
            FrontendMessage.encodeClose(.statement, name: victim.bytes, into: &out)
            expect(.injectedClose(victim), injected: true)
            closed.insert(victim)
        }
    }

    /// A named Parse in transaction pooling, judged: `sent` is what goes up in its place (the
    /// client's own Parse, byte for byte, or the gate's stand-in); `allowed` when it is the
    /// client's; `pins`: what its text pins.
    /// `prelude`: what its text's SQL references need first (``sqlStatementReferences(_:isParse:into:)``).
    mutating func poolingParse(_ parse: FrontendMessage.RawParse, sent: ByteBuffer, allowed: Bool, pins: SessionStateEffects,
                               consume: Int, prelude: ByteBuffer = ByteBuffer()) -> Action {
        let name = StatementName(parse.name)
        var out = prelude
        var change: StatementChange?
        if statements.client[name] != nil || statements.clientPinned.contains(name) || statements.clientSQL.contains(name) {
            // The client prepares a name it already has: the server must say 42P05, as
            // PostgreSQL would (prepare.c StorePreparedStatement), so a kept statement is made
            // present first; one on the pinned server only (over the bound, or prepared in SQL:
            // the session is pinned) is there (found in review: a name prepared over the bound,
            // or by SQL PREPARE, was closed first and replaced).
            _ = prepareIfNeeded(name, into: &out)
        } else if !name.isASCII {
            // Keyed by the server after conversion from the client encoding: it stays on this
            // server, which no other client gets while it is there (``StatementName/isASCII``).
            notePins(.namedProtocolStatement)
            if allowed { change = .clientParse(name, nil) }
        } else {
            // Another client may have left a statement of this name on this server.
            FrontendMessage.encodeClose(.statement, name: name.bytes, into: &out)
            expect(.injectedClose(name), injected: true)
            if allowed, let pooling = configuration.transactionPooling {
                let statement = PreparedStatement(query: parse.query, parameterTypes: parse.parameterTypes,
                                                  pins: pins.intersection(Self.keptWithStatements))
                let kept = keptStatementBytes
                if statements.client.count < pooling.maxPreparedStatements, kept + statement.keptBytes <= Self.maxKeptStatementBytes,
                   keptStatementsShare.allows(statement.keptBytes, keeping: kept) {
                    // Counted now, as if it succeeds: a lag would let each client's latest
                    // statement go uncounted.
                    keptStatementsShare.report(kept + statement.keptBytes)
                    makeRoomOnServer(except: name, adding: statement.keptBytes, into: &out)
                    change = .clientParse(name, statement)
                } else {
                    // Over a bound (this client's, or the process's: ``KeptTextBudget``): the
                    // statement stays on this server only.
                    notePins(.namedProtocolStatement)
                    change = .clientParse(name, nil)
                }
            }
        }
        expect(change, injected: false)
        out.writeBytes(sent.readableBytesView)
        // A refusal's stand-in stays a replacement (the shell counts refusals by it).
        return allowed ? .rewriteToServer(consume: consume, bytes: out) : .replaceToServer(consume: consume, bytes: out)
    }

    /// The text bytes of one client's kept statements: at most ``maxKeptStatementBytes``.
    /// Beyond it a new name pins, as beyond `max_prepared_statements` (found in review: 30
    /// named statements of 30 MB each took the proxy from 178 MB to 998 MB; the count bound
    /// alone allowed 200 × `max_message_size` per client).
    static let maxKeptStatementBytes = 16 * 1024 * 1024

    private var keptStatementBytes: Int {
        statements.client.values.reduce(0) { $0 + $1.keptBytes }
    }

    /// DEALLOCATE ALL and DISCARD ALL drop every named prepared statement (protocol-level too);
    /// DEALLOCATE of one name drops one the proxy cannot name, so the server's set is forgotten
    /// (each statement is prepared again, after a Close, when next used). Neither touches the
    /// unnamed statement (prepare.c DropAllPreparedStatements walks only the prepared_queries
    /// hash; postgres.c keeps the unnamed one in unnamed_stmt_psrc): run from a named statement
    /// (a Query would destroy it itself, ``poolingQuerySent(allowed:)``) they leave it as it was
    /// (found in review: the server was recorded as having none, and the next Bind of the
    /// unnamed statement without a Parse ran the one another client had left there).
    ///
    /// One sent in a Query was projected when sent (``poolingQuerySent(allowed:dropsAll:)``) and
    /// is owed at the front of the completions now (replies come in order): it is confirmed.
    /// Any other (an extended-protocol Execute of it, a Query the classifier could not read)
    /// changes both views now, as before.
    mutating func preparedStatementsCommandComplete(_ tag: String) {
        switch tag {
        case "DEALLOCATE ALL", "DISCARD ALL":
            if case .completion(.allNamedDropped?, _)? = completions.first?.kind {
                _ = completionIsInjected()
            } else {
                changeConfirmed { $0.apply(.allNamedDropped) }
            }
        case "DEALLOCATE":
            changeConfirmed { tracking in
                tracking.server.byName.removeAll()
                tracking.server.uncertain = true
            }
        default:
            break
        }
    }
}
