import Policy
import Wire

/// Transaction pooling (`pool_mode = transaction`): the server connection may change between
/// transactions, so the machine tracks what ties the session to the one it has — the pins —
/// and, with `transaction_pin = refuse`, refuses what would create such state.
///
/// State is pinned *on sight* (when the statement is sent), from the classifier's reading of
/// the parse tree (``SessionStateEffects``): a statement that then fails leaves the session
/// pinned needlessly, never unpinned wrongly. It is released only on the server's word: the
/// CommandComplete tag of DISCARD ALL, DEALLOCATE ALL or DISCARD TEMP (src/backend/tcop/cmdtag.h),
/// and only the state pinned *before* that statement was sent. DISCARD ALL commits at once (it
/// cannot run in a transaction block) and DEALLOCATE ALL is not undone by a rollback, so theirs
/// count at their CommandComplete. DISCARD TEMP's counts only once the transaction it ran in is
/// over and was not rolled back: it runs inside a transaction block, and a rollback brings the
/// temporary tables it dropped back (found in review: `BEGIN; DISCARD TEMP; ROLLBACK` unpinned a
/// client whose temporary table then shadowed the next client's). It is dropped, the state
/// staying pinned, when an error, a ROLLBACK (also the tag of ROLLBACK TO SAVEPOINT and of a
/// COMMIT of a failed transaction), a PREPARE TRANSACTION or a CALL (a procedure may roll the
/// transaction back, PostgreSQL 11+) comes after it; it takes effect at the next ReadyForQuery
/// outside a transaction block.
extension SessionMachine {
    struct PendingRelease {
        /// The CommandComplete tag that confirms it ran.
        let tag: String
        /// What it removes once it ran (once confirmed: less what portals bound before it may
        /// still create).
        var releases: SessionStateEffects
        /// Pins taken after it was sent (and by its own message): they stay.
        var laterPins: SessionStateEffects
        /// Its CommandComplete came; it waits for its transaction to end without a rollback.
        var confirmed = false
    }

    /// Releases awaited at once; more are not tracked (their state simply stays pinned).
    static let maxPendingReleases = 16
    /// The one release a rollback undoes (the others: DISCARD ALL commits at once, DEALLOCATE ALL
    /// is not transactional).
    static let transactionalRelease = "DISCARD TEMP"

    /// Everything the session machine pins on. Session-level settings do not pin: they move
    /// with the client (``SettingsExchange``).
    package static let pinnable: SessionStateEffects = SessionStateEffects.pinning.union([.namedProtocolStatement, .unclassified, .divergentLexing, .fastPathCall,
                                                                                         .unmovableSetting])
        .subtracting(.sessionSetting)
    /// What `transaction_pin = refuse` refuses.
    static let refusable = SessionStateEffects.pinning.subtracting([.sessionSetting, .unqualifiedCreate])
    /// Effects after which the client's settings are read again from the server.
    static let changesSettings: SessionStateEffects = [.sessionSetting, .settingReset, .discardAll]

    /// Transaction pooling: the session's settings may have changed since they were last read
    /// (``SettingsExchange``): read them before the server connection goes back.
    package var needsSettingsCapture: Bool { settingsDirty }

    /// The settings were read by the proxy's own Query, which destroyed the server's unnamed
    /// statement; the client's, if any, is parsed again before its next use.
    package mutating func settingsCaptured() {
        settingsDirty = false
        changeConfirmed { if $0.server.unnamed != .none { $0.server.unnamed = .unknown } }
    }

    /// The client's settings cannot move with it (SettingsExchange: a value too long to carry,
    /// or settings the proxy could not read back): the session keeps its server connection,
    /// which holds them, until a DISCARD ALL. A capture that failed leaves them to be read
    /// again then.
    package mutating func settingsCannotMove() {
        notePins(.unmovableSetting)
    }

    /// What this session's gate refuses of a Query's statements (read-only mode,
    /// `transaction_pin = refuse`), so the shell knows when to locate them.
    package var statementRefusals: StatementRefusals {
        StatementRefusals(readOnly: configuration.readOnly != nil, pins: configuration.transactionPooling?.refusesPinning == true)
    }

    /// Transaction pooling: the session keeps its server connection whatever its state.
    package var isPinned: Bool { !pins.isEmpty }

    /// The refusal of `transaction_pin = refuse` (0A000 feature_not_supported, as PgBouncer's
    /// own unsupported-in-this-mode errors).
    package static func pinRefusal(_ effects: SessionStateEffects) -> Refusal {
        let what = effects.names.joined(separator: ", ")
        return Refusal(sqlState: SQLState.featureNotSupported,
                       message: "\(what) cannot be used with transaction pooling: the state would stay on a server connection other clients share (transaction_pin = refuse)",
                       isPostgreSQLText: false)
    }

    /// A Query or Parse in transaction pooling, with its classification (nil: not classified).
    /// Notes its pins and releases; returns the classification the gate judges (read-write
    /// identities: only the pin refusals) and what the text pins (a prepared statement's, noted
    /// again whenever it is bound).
    mutating func poolingJudged(_ message: FrontendMessage, textIsUTF8: Bool,
                                classification: ClassificationResult?) -> (ClassificationResult?, SessionStateEffects) {
        guard let pooling = configuration.transactionPooling else { return (classification, []) }
        // Only a statement text leaves state behind here: a Sync (or a FunctionCall, judged by
        // ``poolingFunctionCall(_:in:)``) that reaches the gate has none (found in review:
        // every Sync of a read-only or `transaction_pin = refuse` session pinned it as an
        // unclassified statement, so extended-protocol clients held their servers for good).
        let readOnly = configuration.readOnly != nil
        switch message {
        case .query, .parse: break
        default: return (readOnly ? classification : Self.nothingRefused, [])
        }
        var effects: SessionStateEffects = []
        if let classification, textIsUTF8 {
            // A syntax error runs nowhere; a text over the classifier's budget may still run.
            if let error = classification.syntaxError, error.sqlState != SQLState.syntaxError { effects.insert(.unclassified) }
            for statement in classification.statements { effects.formUnion(statement.sessionEffects) }
        } else {
            effects.insert(.unclassified)
        }
        if !effects.intersection(Self.changesSettings).isEmpty { settingsDirty = true }
        let refused = pooling.refusesPinning ? effects.intersection(Self.refusable) : []
        guard !refused.isEmpty, let classification else {
            noteReleases(effects)
            notePins(effects)
            return (readOnly ? classification : Self.nothingRefused, effects)
        }
        // Refused statements never run: only what the session itself pins on is noted.
        // (Statements before a refused one may run: an unqualified CREATE among them pins.)
        notePins(effects.intersection([.namedProtocolStatement, .unclassified, .unqualifiedCreate]))
        let statements = classification.statements.map { statement -> StatementClassification in
            let pinning = statement.sessionEffects.intersection(Self.refusable)
            let refusal = (readOnly ? statement.refusal : nil) ?? (pinning.isEmpty ? nil : Self.pinRefusal(pinning))
            return StatementClassification(commandTag: statement.commandTag, auditClass: statement.auditClass, refusal: refusal,
                                           objects: statement.objects, lookups: statement.lookups,
                                           copiesStoredRows: statement.copiesStoredRows, sessionEffects: statement.sessionEffects)
        }
        return (ClassificationResult(statements: statements, syntaxError: readOnly ? classification.syntaxError : nil), effects)
    }

    /// What a read-write identity's refusing gate sees for a statement it must let through.
    static let nothingRefused = ClassificationResult(statements: [], syntaxError: nil)

    mutating func notePins(_ effects: SessionStateEffects) {
        let taken = effects.intersection(Self.pinnable)
        guard !taken.isEmpty else { return }
        for index in pendingReleases.indices { pendingReleases[index].laterPins.formUnion(taken) }
        let new = taken.subtracting(pins)
        guard !new.isEmpty else { return }
        pins.formUnion(new)
        events.append(.pinned(new.names))
    }

    private mutating func noteReleases(_ effects: SessionStateEffects) {
        let kinds: [(SessionStateEffects, String, SessionStateEffects)] = [
            // DISCARD ALL: CLOSE ALL, SET SESSION AUTHORIZATION DEFAULT, RESET ALL, DEALLOCATE
            // ALL, UNLISTEN *, pg_advisory_unlock_all(), DISCARD PLANS/TEMP/SEQUENCES (docs
            // DISCARD) — a loaded library stays.
            // What a DO block did is not known, so it is not released either; nor does it
            // close dblink connections.
            (.discardAll, "DISCARD ALL", Self.pinnable.subtracting([.load, .unclassified, .anonymousCode, .divergentLexing, .externalConnection,
                                                                   .fastPathCall])),
            // Protocol-level statements too (prepare.c DropAllPreparedStatements).
            (.deallocateAll, "DEALLOCATE ALL", [.preparedStatement, .namedProtocolStatement]),
            (.discardTemp, "DISCARD TEMP", [.temporaryObject, .unqualifiedCreate]),
        ]
        for (effect, tag, releases) in kinds where effects.contains(effect) && pendingReleases.count < Self.maxPendingReleases {
            pendingReleases.append(PendingRelease(tag: tag, releases: releases, laterPins: []))
        }
    }

    /// A ParameterStatus in transaction pooling (at start-up too). Every pin is read from
    /// statement text lexed as PostgreSQL does with `standard_conforming_strings = on` and an
    /// encoding whose bytes below 0x80 are always ASCII; a server session reading text otherwise
    /// (`'x\''` is a closed string with it off; in SJIS `0x81 0x5C` swallows the backslash)
    /// runs statements the classifier never saw, so the session stays on it for good. The
    /// server reports both settings on every change (GUC_REPORT), before the ReadyForQuery of
    /// the statement that changed them, so before the connection could go back to the pool.
    mutating func poolingParameterStatus(name: String, value: String) {
        if Self.lexesDifferently(name: name, value: value) { notePins(.divergentLexing) }
    }

    /// A setting's value with which the server reads statement text as the classifier does not.
    static func lexesDifferently(name: String, value: String) -> Bool {
        switch name.lowercased() {
        case "standard_conforming_strings": value.lowercased() != "on"
        case "client_encoding": ClientEncodingPolicy.isUnsafe(value)
        default: false
        }
    }

    /// What the start-up values of a server connection mean for the sessions attached to it
    /// (``startupVerdict(of:readOnly:)``): judged once per connection, the same for every
    /// session of its pool.
    package struct StartupVerdict: Equatable, Sendable {
        /// It lexes statement text as the classifier does not (``SessionStateEffects/divergentLexing``).
        package var divergentLexing = false
        /// How it reads statement text (for the audit's records, ``ServerTextReading``).
        package var textReading = ServerTextReading()
        /// Why a read-only session cannot run on it (``ReadOnlyTripwire``), if it cannot.
        package var breach: String?
    }

    /// The start-up values of a server connection attached for a transaction, read as a login's
    /// are (``init(_:backendProcessID:backendSecretKey:serverParameters:)``): a pool's
    /// connections may have started under different role or database defaults
    /// (`ALTER ROLE … SET client_encoding` between two backend starts), and a login is answered
    /// from one of them while its statements run on others (found in review).
    package static func startupVerdict(of parameters: [(String, String)], readOnly: Bool) -> StartupVerdict {
        var verdict = StartupVerdict()
        verdict.divergentLexing = parameters.contains { Self.lexesDifferently(name: $0.0, value: $0.1) }
        verdict.textReading = ServerTextReading(parameters: parameters)
        if readOnly {
            var tripwire = ReadOnlyTripwire()
            if case .breached(let reason) = tripwire.startupParametersReceived(parameters) { verdict.breach = reason }
        }
        return verdict
    }

    /// Transaction pooling: the attached server connection's ``StartupVerdict`` (the shell
    /// judged it once for the connection). A connection that lexes differently keeps the
    /// session for good, as one that starts doing so (``poolingParameterStatus(name:value:)``).
    package mutating func attachedServerJudged(_ verdict: StartupVerdict) {
        if verdict.divergentLexing { notePins(.divergentLexing) }
        // The audit's records of what runs on it are read as it reads text (what the client set
        // itself is restored on it by the settings exchange, whose replies this machine does
        // not see: the reading so far is kept, and worsened by the connection's own).
        if verdict.textReading.divergence != nil {
            withTextReading { reading in
                reading.now = reading.now.merged(with: verdict.textReading)
                reading.batch = reading.batch.merged(with: reading.now)
            }
        }
    }

    /// The large-object functions libpq calls by fast path (lo_open, lo_close, loread, lowrite,
    /// lo_lseek(64), lo_creat, lo_create, lo_tell(64), lo_unlink, lo_truncate(64); OIDs fixed in
    /// src/include/catalog/pg_proc.dat): their descriptors close with the transaction (docs
    /// 35.3), so they leave nothing on the session.
    static let transactionScopedFastPathOIDs: Set<UInt32> = [952, 953, 954, 955, 956, 957, 958, 964, 715, 1004, 3170, 3171, 3172]

    /// A FunctionCall in transaction pooling, whole at the front: anything but a large-object
    /// function pins (found in review: `set_config('role', …)` called by OID was left on the
    /// server for the next client).
    mutating func poolingFunctionCall(_ frame: MessageFrame, in buffer: ByteBuffer) {
        let payload = Array(buffer.readableBytesView.dropFirst(5).prefix(4))
        let oid = payload.count == 4 ? payload.reduce(UInt32(0)) { $0 << 8 | UInt32($1) } : 0
        if !Self.transactionScopedFastPathOIDs.contains(oid) { notePins(.fastPathCall) }
    }

    /// A CommandComplete in transaction pooling: the server's word on what ran.
    mutating func poolingCommandComplete(_ tag: String) {
        preparedStatementsCommandComplete(tag)
        // Backstop: whatever ran, the settings are read again.
        if tag == "SET" || tag == "RESET" || tag == "DISCARD ALL" { settingsDirty = true }
        switch tag {
        // Backstops for what the classifier already pinned on sight.
        case "LISTEN": notePins(.listen)
        case "PREPARE": notePins(.preparedStatement)
        case "LOAD": notePins(.load)
        // Undone, or left to be committed or rolled back later: what it released comes back.
        case "ROLLBACK", "PREPARE TRANSACTION", "CALL": dropConfirmedReleases()
        default:
            guard let index = pendingReleases.firstIndex(where: { !$0.confirmed && $0.tag == tag }) else { return }
            var release = pendingReleases[index]
            // A portal bound before it may still run (portals last until their transaction ends).
            release.releases = release.releases.subtracting(release.laterPins).subtracting(portalPins)
            release.laterPins = []
            // Replies come in order: releases sent before this one that never confirmed failed.
            var kept = pendingReleases[..<index].filter(\.confirmed)
            if release.tag == Self.transactionalRelease {
                release.confirmed = true
                kept.append(release)
            } else {
                let wasPinned = isPinned
                pins.subtract(release.releases)
                if wasPinned && !isPinned { events.append(.unpinned) }
            }
            pendingReleases = kept + pendingReleases[(index + 1)...]
        }
    }

    /// An ErrorResponse: the transaction (or the implicit one of a Query or of a batch up to
    /// Sync) will not commit what ran in it — or, after a ROLLBACK TO SAVEPOINT, perhaps it
    /// will; either way its releases are not trusted.
    mutating func dropConfirmedReleases() {
        pendingReleases.removeAll(where: \.confirmed)
    }

    /// ReadyForQuery: outside a transaction block, the releases its transaction confirmed take
    /// effect; with nothing else owed, releases never confirmed failed.
    mutating func poolingReadyForQuery() {
        if transactionStatus == .idle, pendingReleases.contains(where: \.confirmed) {
            let wasPinned = isPinned
            for release in pendingReleases where release.confirmed { pins.subtract(release.releases.subtracting(release.laterPins)) }
            pendingReleases.removeAll(where: \.confirmed)
            if wasPinned && !isPinned { events.append(.unpinned) }
        }
        // A failed transaction block rolls back whatever it confirmed.
        if transactionStatus == .failed { dropConfirmedReleases() }
        if !lifecycle.isAwaitingReplies { pendingReleases.removeAll(where: { !$0.confirmed }) }
        // Outside a transaction block the portals are gone (holdable cursors pin on their own).
        if transactionStatus == .idle { portalPins = [] }
        completionsAfterReadyForQuery()
    }

    /// Extended-protocol messages since the last Sync keep the session busy (``unsynced``).
    mutating func noteSync(_ type: UInt8) {
        // A Query's marker is pushed with what it does to the unnamed statement (``poolingQuerySent(allowed:)``).
        if configuration.transactionPooling != nil {
            if type == UInt8(ascii: "S") { pushCompletion(.sync) }
            // A FunctionCall the server will skip (an extended-protocol error already came and
            // its Sync has not been sent) gets no ReadyForQuery of its own.
            if type == UInt8(ascii: "F") && !lifecycle.awaitsClientSync { pushCompletion(.readyForQuery(query: nil)) }
        }
        switch type {
        case UInt8(ascii: "S"): unsynced = false
        case UInt8(ascii: "P"), UInt8(ascii: "B"), UInt8(ascii: "D"), UInt8(ascii: "E"), UInt8(ascii: "C"), UInt8(ascii: "H"):
            unsynced = true
        default: break
        }
    }

    /// Transaction pooling: a server connection was attached for the next transaction.
    /// `statements`: what that server has prepared (kept with its link).
    package mutating func serverAttached(processID: Int32, secretKey: [UInt8], statements: ServerStatements = ServerStatements()) {
        backend = (processID, secretKey)
        completions.removeAll()
        changeConfirmed { tracking in
            tracking.server = statements
            // What the link recorded may be gone (the proxy's settings queries destroy it) or be
            // another client's: parsed again, or closed, before the client's next use.
            if tracking.server.unnamed != .none { tracking.server.unnamed = .unknown }
        }
    }

    /// Transaction pooling: the server connection goes back to the pool (at rest, unpinned);
    /// returns what it has prepared, for its link to keep.
    package mutating func serverDetached() -> ServerStatements {
        backend = nil
        // At rest nothing is owed: the answers confirmed everything sent.
        let left = confirmedStatements.server
        changeConfirmed { $0.server = ServerStatements() }
        return left
    }
}
