import Wire
import Policy

/// The established phase of one session (protocol 3.0 after the first ReadyForQuery) as a
/// pure value: the shell (`ClientSession`) hands it the bytes at the front of each side's
/// buffer and runs the action it returns; it never touches a socket, a clock or a lock.
///
/// It owns everything that is decided per message:
///
/// - the two ``MessageStreamTracker``s: bytes are forwarded frame by frame without
///   re-encoding; only the messages something below needs are held back until complete;
/// - the transaction status of the last ReadyForQuery and whether the server owes one
///   (a statement is in flight);
/// - for read-only identities the ``ReadOnlyGate`` (every Query, Parse, FunctionCall and Sync,
///   and server ErrorResponses) and the ``ReadOnlyTripwire`` (server ParameterStatus);
/// - the ``StatementLifecycle`` (statement → classification → outcome), reported as
///   ``Event/statementFinished(_:)`` events at each ReadyForQuery. It is what knows which
///   ReadyForQuery the server still owes, so it runs for every session: without
///   `followsStatements` it sees message types only (at the first byte of each message, nothing
///   held back) and its records are not reported;
/// - catalog-change detection (``CatalogChangeTag``), reported as ``Event/catalogChanged``
///   once the transaction holding the change is over;
/// - cancel bookkeeping: the backend's key and whether ending the session now must cancel a
///   query first (``needsCancelOnEnd``);
/// - the one "reusable at rest" predicate, ``isAtRest``;
/// - with `pool_mode = transaction`, what ties the session to its server connection (pins,
///   SessionMachine+Pooling.swift), the client's named prepared statements and what the
///   attached server has prepared (SessionMachine+PreparedStatements.swift), and whether its
///   settings must be read back (``SettingsExchange``).
///
/// Replies come in the order of the messages that caused them (PostgreSQL docs 55.2.2 Simple
/// Query, 55.2.3 Extended Query), which is what lets a value follow a pipelined session
/// without asking the server anything.
package struct SessionMachine {
    package struct ReadOnlySettings {
        /// The client's identity, named in refusals.
        package var identity: String
        /// `readonly_max_statement_size`: a longer Query or Parse text is refused unread (54000).
        package var maxStatementSize: Int
        /// A fresh unpredictable token per refusal (128 random bits in the shell).
        package var tokens: () -> String

        package init(identity: String, maxStatementSize: Int, tokens: @escaping () -> String) {
            self.identity = identity
            self.maxStatementSize = maxStatementSize
            self.tokens = tokens
        }
    }

    /// pgAudit `log_parameter` for the statement records (with `followsStatements`).
    package struct ParameterLogging: Equatable {
        /// `audit_log_parameter_max_size`: longer values are not kept; 0 = no limit.
        package var maxSize: Int
        package init(maxSize: Int) { self.maxSize = maxSize }
    }

    /// `pool_mode = transaction` (SessionMachine+Pooling.swift).
    package struct TransactionPooling {
        /// `transaction_pin = refuse`: statements that would pin are refused (0A000) instead.
        package var refusesPinning: Bool
        /// Refusal tokens for the gate a read-write identity gets when refusing (128 random bits).
        package var tokens: () -> String
        /// `max_prepared_statements`: named protocol-level statements kept per client (and
        /// prepared on whichever server it gets); a new name beyond it pins. 0: every named
        /// statement pins.
        package var maxPreparedStatements: Int
        /// `readonly_max_statement_size` for every identity here: a longer Query or Parse text is
        /// not classified (its parse tree costs ~150 bytes per byte of text on a classifier
        /// thread; found in review: one 60 MB Query of a read-write identity took the proxy to
        /// 9.3 GB). It counts as unclassified, as a text over the classifier's budget does.
        package var maxClassifiedSize: Int

        package init(refusesPinning: Bool, tokens: @escaping () -> String, maxPreparedStatements: Int = 200,
                     maxClassifiedSize: Int = 1024 * 1024) {
            self.refusesPinning = refusesPinning
            self.tokens = tokens
            self.maxPreparedStatements = maxPreparedStatements
            self.maxClassifiedSize = maxClassifiedSize
        }
    }

    /// Immutable, and a class: sessions of one identity and mode share one instance (the shell
    /// interns them, ``Key``), where inline it was 104 bytes in every session, idle or not
    /// (docs/PERFORMANCE.md, "Idle clients").
    package final class Configuration {
        /// `max_message_size`: the longest client message accepted (08P01 beyond it).
        package let maxMessageSize: Int
        /// Set for read-only identities.
        package let readOnly: ReadOnlySettings?
        /// Follow every statement to its outcome (``Event/statementFinished(_:)``): the audit
        /// stream's source. Off, Bind/Execute/Close and most replies are not held back at all.
        package let followsStatements: Bool
        /// Keep each Bind's values with its statement's record (``StatementLifecycle/Record/parameters``).
        package let parameterLogging: ParameterLogging?
        /// Set in transaction pooling: the server connection may change between transactions.
        package let transactionPooling: TransactionPooling?
        /// The longest body of a server message this session holds whole to read it
        /// (``maxHeldServerBody`` but in tests).
        package let maxHeldServerBody: Int
        /// The process-wide bound on kept statement text (one instance for every session).
        package let keptTexts: KeptTextBudget?

        /// Everything a configuration holds but its token sources, which a shell gives every
        /// session alike: two configurations with the same key behave the same.
        package struct Key: Hashable {
            let maxMessageSize: Int
            let readOnlyIdentity: String?
            let maxStatementSize: Int?
            let followsStatements: Bool
            let parameterLogMaxSize: Int?
            let transactionPooling: Bool
            let refusesPinning: Bool
            let maxPreparedStatements: Int
            let maxClassifiedSize: Int
            let maxHeldServerBody: Int
        }

        package var key: Key {
            Key(maxMessageSize: maxMessageSize, readOnlyIdentity: readOnly?.identity, maxStatementSize: readOnly?.maxStatementSize,
                followsStatements: followsStatements, parameterLogMaxSize: parameterLogging?.maxSize,
                transactionPooling: transactionPooling != nil, refusesPinning: transactionPooling?.refusesPinning ?? false,
                maxPreparedStatements: transactionPooling?.maxPreparedStatements ?? 0,
                maxClassifiedSize: transactionPooling?.maxClassifiedSize ?? 0, maxHeldServerBody: maxHeldServerBody)
        }

        package init(maxMessageSize: Int, readOnly: ReadOnlySettings?, followsStatements: Bool,
                     parameterLogging: ParameterLogging? = nil, transactionPooling: TransactionPooling? = nil,
                     maxHeldServerBody: Int = SessionMachine.maxHeldServerBody, keptTexts: KeptTextBudget? = nil) {
            self.maxMessageSize = maxMessageSize
            self.keptTexts = keptTexts
            self.maxHeldServerBody = maxHeldServerBody
            self.readOnly = readOnly
            self.followsStatements = followsStatements
            self.parameterLogging = parameterLogging
            self.transactionPooling = transactionPooling
        }
    }

    /// What the shell does next with the bytes at the front of one side's buffer.
    package enum Action: Equatable {
        /// Pass this many bytes from the front of the client's buffer to the server.
        case forwardToServer(Int)
        /// Consume one whole client message (`consume` bytes) and send `bytes` to the server
        /// in its place: a read-only refusal's stand-in.
        case replaceToServer(consume: Int, bytes: ByteBuffer)
        /// Consume one whole client message (`consume` bytes) and send `bytes` to the server in
        /// its place: the same message with what transaction pooling slips in before it (a
        /// Close and Parse that prepare the client's named statement on this server).
        case rewriteToServer(consume: Int, bytes: ByteBuffer)
        /// Drop this many bytes from the front of the client's buffer: the rest of a message
        /// already answered (a read-only statement over the size limit, refused from its header).
        case discardFromClient(Int)
        /// Pass this many bytes from the front of the server's buffer to the client.
        case forwardToClient(Int)
        /// Drop this many bytes from the front of the server's buffer: the rest of an
        /// ErrorResponse or NoticeResponse over ``Configuration/maxHeldServerBody`` whose cut
        /// form the client was already sent (SessionMachine+ServerLimits.swift).
        case discardFromServer(Int)
        /// Consume one whole server message and send `bytes` to the client in its place: the
        /// refusal in place of its stand-in's error.
        case replaceToClient(consume: Int, bytes: ByteBuffer)
        /// The Query or Parse at the front of the client's buffer needs its classification
        /// (at once from a cache, or off the loop): answer with
        /// ``classified(_:statementOffsets:parameterTypesRefusal:)``. Nothing else from the
        /// client is looked at until then; the message stays in the buffer.
        case classify(ClassificationRequest)
        /// Terminate with nothing owed: consume `consume` bytes; the client is leaving, the
        /// server connection goes back to the pool (not passed on: the pool resets or closes it).
        case releaseServer(consume: Int)
        /// Terminate while the server still owes replies: consume `consume` bytes and read
        /// nothing more from the client (PostgreSQL reads no further, postgres.c PostgresMain
        /// case 'X'); what follows it is discarded. The session ends once everything before it
        /// is answered (``terminationStep()``, SessionMachine+Terminate.swift).
        case terminate(consume: Int)
        /// End the session: send `error` to the client (after what it was already sent), then
        /// close. The server connection is not reused.
        case close(reason: String, error: ErrorFields?)
        /// Nothing to do before more bytes arrive, or a classification or the replies that
        /// resolve pending refusals.
        case wait
    }

    /// What the session observed, drained by the shell with ``takeEvents()``.
    package enum Event: Equatable {
        /// A statement reached its outcome; released at the ReadyForQuery that ends its batch,
        /// with that ReadyForQuery's transaction status.
        case statementFinished(StatementLifecycle.Record)
        /// A statement that can change what a catalog snapshot records (DDL, GRANT, …) ran
        /// and its transaction is over (committed or not: a refresh is cheap).
        case catalogChanged
        /// The server reported a setting under which the read-only gate's judgement no longer
        /// holds (``ReadOnlyTripwire``); a ``Action/close(reason:error:)`` follows.
        case readOnlyBreached(String)
        /// Transaction pooling: the session is now pinned to its server connection for these
        /// reasons (``SessionStateEffects/names``) — logged and counted by the shell.
        case pinned([String])
        /// Transaction pooling: the state that pinned the session is gone.
        case unpinned
        /// `followsStatements`: how the server read the text of the ``statementFinished(_:)``
        /// records that follow (until the next such event), when it differs from the last one
        /// reported (at first: UTF-8, `standard_conforming_strings` on). The audit does not trust
        /// libpg_query's split and class of text the server read differently
        /// (``ServerTextReading/divergence``).
        case textReading(ServerTextReading)
    }

    /// `followsStatements`: how the server reads statement text now, over the batch the next
    /// ReadyForQuery ends, and as last reported (``Event/textReading(_:)``). Out of line: only
    /// audited sessions carry it.
    final class TextReadingStorage {
        var now: ServerTextReading
        var batch: ServerTextReading
        var reported = ServerTextReading()
        init(_ reading: ServerTextReading) {
            now = reading
            batch = reading
        }
    }

    /// A Query or Parse text to classify (``Action/classify(_:)``).
    package struct ClassificationRequest: Equatable {
        package var sql: String
        package var isQuery: Bool
        /// A Parse's declared parameter types: the shell asks its catalog snapshot about them
        /// (``CatalogSnapshot/refusal(forParameterTypes:)``) and passes the answer back.
        package var parameterTypes: [Int32]
        /// The whole message's length, for logging.
        package var messageLength: Int
    }

    /// A class, made per classified statement: 72 bytes inline in every session otherwise,
    /// idle or not (docs/PERFORMANCE.md, "Idle clients").
    final class PendingClassification {
        let frame: MessageFrame
        let message: FrontendMessage
        /// Transaction pooling: a Parse as its bytes (``FrontendMessage/RawParse``).
        let rawParse: FrontendMessage.RawParse?
        /// A read-only session's Bind or Execute whose statement is judged again
        /// (SessionMachine+BindJudgment.swift); `message` is then not looked at.
        let held: HeldMessage?
        /// The first answer, while the texts of the prepared statements it executes are judged
        /// (SessionMachine+BindJudgment.swift).
        var expanding: (first: ClassificationResult, offsets: [Int]?, typed: Refusal?)?

        init(frame: MessageFrame, message: FrontendMessage, rawParse: FrontendMessage.RawParse? = nil, held: HeldMessage? = nil) {
            self.frame = frame
            self.message = message
            self.rawParse = rawParse
            self.held = held
        }
    }

    /// The read-only gate out of line: most sessions have none, and inline it would be 66
    /// bytes in each of them. Copied before a mutation when shared (``withGate(_:)``), so a
    /// copy of the machine stays a value.
    final class GateStorage {
        var gate: ReadOnlyGate
        /// Read-only identities only (they always have a gate): 32 bytes that sessions without
        /// one need not carry.
        var tripwire: ReadOnlyTripwire
        init(_ gate: ReadOnlyGate, tripwire: ReadOnlyTripwire = ReadOnlyTripwire()) {
            self.gate = gate
            self.tripwire = tripwire
        }
    }

    package let configuration: Configuration
    // Stored properties in this order: the one-byte and four-byte ones fill the bytes a
    // tracker (25 bytes) leaves before the next eight-byte field (Swift lays fields out in
    // declaration order); 24 bytes less in every session (docs/PERFORMANCE.md, idle clients).
    var clientTracker: MessageStreamTracker
    /// The last ReadyForQuery's status.
    package internal(set) var transactionStatus: TransactionStatus = .idle
    /// The server session must not be reused whatever it answers next (the tripwire fired).
    var serverUnusable = false
    /// A statement in the current transaction changed the catalog (CommandComplete tag).
    var ranCatalogChange = false
    /// Transaction pooling: what ties the session to its current server connection.
    package internal(set) var pins: SessionStateEffects = []
    var serverTracker: MessageStreamTracker
    /// Extended-protocol messages (Parse, Bind, Describe, Execute, Close, Flush) went up since
    /// the last Sync: the server holds unsynced work, so the session is not at rest.
    var unsynced = false
    /// Transaction pooling: a statement that can change session settings was sent since they
    /// were last read from the server.
    var settingsDirty = false
    /// Transaction pooling's kept statements' part of the process-wide bound.
    var keptStatementsShare = KeptTextShare(nil)
    /// The client sent Terminate while replies were owed (SessionMachine+Terminate.swift).
    package internal(set) var termination: Termination?
    /// Transaction pooling: the pins of the statements bound since the transaction began (their
    /// portals may still run, whatever a DISCARD TEMP meanwhile released).
    var portalPins: SessionStateEffects = []
    var gateStorage: GateStorage?
    /// Read-only identities, and `transaction_pin = refuse`: what refuses statements.
    package var gate: ReadOnlyGate? { gateStorage?.gate }
    package internal(set) var lifecycle: StatementLifecycle
    /// `followsStatements` only (``TextReadingStorage``).
    var textReading: TextReadingStorage?
    var pendingClassification: PendingClassification?
    package internal(set) var events: [Event] = []
    /// The backend's real key (BackendKeyData), for cancelling its queries; in transaction
    /// pooling the backend currently attached, nil between transactions.
    package internal(set) var backend: (processID: Int32, secretKey: [UInt8])?
    /// Transaction pooling: statements sent that would release state (DISCARD ALL, …), with
    /// the pins taken after them (SessionMachine+Pooling.swift).
    var pendingReleases: [PendingRelease] = []
    /// Transaction pooling: the client's prepared statements and what the attached server has
    /// prepared, once everything sent is answered as expected (the view the next message is
    /// planned from), and as the answers so far have it (SessionMachine+StatementTracking.swift).
    var statements = StatementTracking()
    var confirmedStatements = StatementTracking()
    /// Parse/Close completions and ReadyForQuery markers owed, in order (run-length encoded).
    var completions = CompletionQueue()

    /// Terminate, always held whole: the client is leaving and it is not passed on.
    static let terminate = UInt8(ascii: "X")
    /// Client message types the lifecycle follows. CopyDone and CopyFail end a copy-in: Syncs
    /// sent before them are ignored by the server.
    package static let followedClientTypes: Set<UInt8> = Set("QPBECSFcf".utf8)
    /// Server message types the lifecycle follows.
    package static let followedServerTypes: Set<UInt8> = Set("CEIsZG".utf8)

    /// `backendProcessID`/`backendSecretKey`: the server's BackendKeyData. `serverParameters`:
    /// its start-up ParameterStatus values (the tripwire's baseline; the start-up machine has
    /// already refused a session whose start-up values breach it).
    package init(_ configuration: Configuration, backendProcessID: Int32, backendSecretKey: [UInt8],
                 serverParameters: [(String, String)]) {
        self.configuration = configuration
        lifecycle = StatementLifecycle(keepsRecords: configuration.followsStatements)
        backend = (backendProcessID, backendSecretKey)
        var clientTypes: Set<UInt8> = [Self.terminate]
        // ReadyForQuery always; CommandComplete for catalog changes (read-write sessions, whose
        // DDL through the proxy refreshes the snapshots the gate relies on); read-only
        // sessions: errors for the gate and ParameterStatus for the tripwire.
        var serverTypes: Set<UInt8> = [UInt8(ascii: "Z")]
        if let readOnly = configuration.readOnly {
            var tripwire = ReadOnlyTripwire()
            _ = tripwire.startupParametersReceived(serverParameters)
            gateStorage = GateStorage(ReadOnlyGate(identity: readOnly.identity, tokens: readOnly.tokens,
                                                   keptTexts: configuration.keptTexts), tripwire: tripwire)
            clientTypes.formUnion(ReadOnlyGate.inspectedClientTypes)
            // Bind and Execute: the statement is judged again; Close: a statement's or a
            // portal's text is forgotten (SessionMachine+BindJudgment.swift).
            clientTypes.formUnion([UInt8(ascii: "B"), UInt8(ascii: "C"), UInt8(ascii: "E")])
            serverTypes.formUnion([UInt8(ascii: "E"), UInt8(ascii: "S")])
        } else {
            serverTypes.insert(UInt8(ascii: "C"))
        }
        keptStatementsShare = KeptTextShare(configuration.keptTexts)
        if let pooling = configuration.transactionPooling {
            // Every Query and Parse text is classified for the state it leaves behind; tags
            // of CommandComplete tell what the server did (DISCARD ALL, LISTEN, …).
            clientTypes.formUnion([UInt8(ascii: "Q"), UInt8(ascii: "P")])
            serverTypes.insert(UInt8(ascii: "C"))
            // ParameterStatus: whether the server still lexes text as the classifier does.
            serverTypes.insert(UInt8(ascii: "S"))
            // Named statements follow the client: Bind, Describe and Close name them; the
            // completions of what the proxy slips in are dropped, errors end a batch.
            clientTypes.formUnion([UInt8(ascii: "B"), UInt8(ascii: "D"), UInt8(ascii: "C")])
            // A fast-path FunctionCall pins unless it is a large-object function (by OID).
            clientTypes.insert(UInt8(ascii: "F"))
            serverTypes.formUnion([UInt8(ascii: "1"), UInt8(ascii: "3"), UInt8(ascii: "E")])
            if pooling.refusesPinning && gateStorage == nil {
                // A gate that refuses only what cannot move between servers.
                gateStorage = GateStorage(ReadOnlyGate(identity: "", tokens: pooling.tokens, judgesFunctionCalls: false))
                clientTypes.formUnion(ReadOnlyGate.inspectedClientTypes)
                serverTypes.insert(UInt8(ascii: "E"))
            }
        }
        if configuration.followsStatements {
            clientTypes.formUnion(Self.followedClientTypes)
            serverTypes.formUnion(Self.followedServerTypes)
            // ParameterStatus: how the server reads the text the audit records.
            serverTypes.insert(UInt8(ascii: "S"))
            textReading = TextReadingStorage(ServerTextReading(parameters: serverParameters))
        }
        // A read-only session's Query or Parse over readonly_max_statement_size is refused from
        // its header, not held whole first (up to max_message_size per client).
        clientTracker = MessageStreamTracker(maxMessageLength: configuration.maxMessageSize, inspecting: clientTypes,
                                             validTypes: MessageStreamTracker.frontendTypes,
                                             limitedTypes: configuration.readOnly == nil ? [] : [UInt8(ascii: "Q"), UInt8(ascii: "P")],
                                             maxHeldBody: configuration.readOnly?.maxStatementSize ?? .max)
        // Server messages are bounded by PostgreSQL only at 1 GB, and an error can quote a
        // client's input whole: every type held whole is held only up to maxHeldServerBody
        // (found in review: three read-only sessions each holding a 300 MB ErrorResponse took
        // the proxy to 2.5 GB). Longer errors and notices are cut, anything else ends the
        // session (SessionMachine+ServerLimits.swift); what is not held streams as before.
        // CopyData and DataRow in runs: no state follows them one by one (`countReply` ignores
        // both), so a run is one step and one send (pg_dump's COPY OUT through the proxy).
        serverTracker = MessageStreamTracker(maxMessageLength: Int(Int32.max), inspecting: serverTypes,
                                             runs: [UInt8(ascii: "d"), UInt8(ascii: "D")],
                                             limitedTypes: serverTypes, maxHeldBody: configuration.maxHeldServerBody)
        if configuration.transactionPooling != nil {
            for (name, value) in serverParameters { poolingParameterStatus(name: name, value: value) }
        }
    }

    /// Runs `body` on the text reading (nothing without one), copying it first if another copy
    /// of the machine shares it.
    mutating func withTextReading(_ body: (TextReadingStorage) -> Void) {
        guard let reading = textReading else { return }
        if !isKnownUniquelyReferenced(&textReading) {
            let copy = TextReadingStorage(reading.now)
            copy.batch = reading.batch
            copy.reported = reading.reported
            textReading = copy
        }
        textReading.map(body)
    }

    /// Runs `body` on the gate in place (nil without one), copying it first if another copy of
    /// the machine shares it.
    mutating func withGate<Result>(_ body: (inout ReadOnlyGate) -> Result) -> Result? {
        withGateStorage { body(&$0.gate) }
    }

    /// The session ends: the statement text it kept no longer counts (``KeptTextBudget``).
    package mutating func releaseKeptTexts() {
        keptStatementsShare.report(0)
        _ = withGate { $0.releaseKeptTexts() }
    }

    /// The gate's storage, copied first when another copy of the machine shares it.
    mutating func withGateStorage<Result>(_ body: (GateStorage) -> Result) -> Result? {
        guard gateStorage != nil else { return nil }
        if !isKnownUniquelyReferenced(&gateStorage) { gateStorage = gateStorage.map { GateStorage($0.gate, tripwire: $0.tripwire) } }
        return gateStorage.map(body)
    }

    // MARK: - Queries

    /// The one "reusable at rest" predicate: the server owes nothing (every message it was
    /// sent has had its ReadyForQuery), it is outside a transaction block, both directions
    /// stand at a message boundary, no client message waits for its classification, and
    /// nothing made the server session unusable (the tripwire, the server closing). A
    /// server connection is reused only from here, and only here is a session idle
    /// (client_idle_timeout, buffer release); the shell adds only that its sockets' buffers
    /// are empty.
    package var isAtRest: Bool {
        !statementInFlight && !unsynced && transactionStatus == .idle && serverTracker.isAtMessageBoundary && !serverUnusable
            && !lifecycle.lostTrack
    }

    /// The server owes a reply: a message went up whose ReadyForQuery has not come back (a
    /// pipeline counts every Query, FunctionCall and Sync; Syncs inside a copy-in do not, as
    /// the server ignores them), a message is half sent, or one waits for its classification.
    package var statementInFlight: Bool {
        lifecycle.isAwaitingReplies || !clientTracker.isAtMessageBoundary || pendingClassification != nil
    }

    /// The client must not be read further (beyond a message still arriving): a message waits
    /// for its classification, the gate holds as many pending refusals as it may, or as many
    /// messages await their replies as this follows (``maxPendingOperations``).
    package var isHoldingClientMessages: Bool {
        termination != nil || pendingClassification != nil || gateStorage?.gate.isAtPendingBound == true
            || lifecycle.pendingOperations >= Self.maxPendingOperations
            // Transaction pooling's FIFO of completions owed (its runs of one kind are one entry).
            || completions.count >= Self.maxPendingCompletions
    }

    /// Messages awaiting their replies that a session may have in flight before its client is
    /// no longer read (backpressure, never an error, as a full socket buffer would be with
    /// PostgreSQL itself): each is a queue entry of some 50 bytes for as little as a 5-byte Sync.
    /// The lifecycle's queue once cost O(n) per reply (an array): at 65,536, 60,000 pending
    /// Executes took 2.9 s of loop time to answer (release build). It is a ``FIFOQueue`` now,
    /// O(1) per reply; the bound still caps its memory and the scans that remain O(n) (an
    /// extended-protocol error's skip to Sync, a portal's first suspension, a copy-in's start).
    package static let maxPendingOperations = 4_096

    /// Ending the session now leaves a query running on the server: cancel it first, as a
    /// careful client would (55.2.7 Canceling Requests in Progress).
    /// Not once the server has been sent the client's Terminate: it ends on its own after
    /// answering what came before, as it would have for the client directly.
    package var needsCancelOnEnd: Bool {
        (statementInFlight || lifecycle.lostTrack) && backend != nil && termination != .forwarded
    }

    /// Statements finished so far.
    package var statementCount: UInt64 { lifecycle.statementCount }

    /// The events observed since the last call.
    package mutating func takeEvents() -> [Event] {
        guard !events.isEmpty else { return [] }
        defer { events.removeAll(keepingCapacity: true) }
        return events
    }

    /// The session is ending: statements sent whose outcome never came, as
    /// ``StatementLifecycle/Outcome/disconnected`` records (with those finished but not yet
    /// released by a ReadyForQuery), when statements are followed.
    package mutating func sessionEnded(now: Int64) -> [StatementLifecycle.Record] {
        guard configuration.followsStatements else { return [] }
        reportTextReading()
        // Statements still owed replies are on the backend attached now (a detached session
        // owes none).
        return lifecycle.sessionEnded(at: now).map { stampedWithBackend($0) }
    }

    /// The server connection is gone (closed by the server): nothing can be in flight on it.
    package mutating func serverClosed() {
        serverUnusable = true
        backend = nil
    }
}
