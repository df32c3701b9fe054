import XCTest
import Wire
import Policy
@testable import Session

/// Drives a ``SessionMachine`` the way the shell does: the bytes at the front of each side's
/// buffer go in, each action is run against byte sinks standing in for the two sockets.
/// Classification runs inline on the real classifier (libpg_query), or is left pending.
final class SessionHarness {
    typealias Record = StatementLifecycle.Record

    /// PostgreSQL 15's start-up ParameterStatus values for a read-only session (captured
    /// through the proxy: default_transaction_read_only comes from its startup packet).
    static let pg15Parameters: [(String, String)] = [
        ("application_name", "psql"), ("client_encoding", "UTF8"), ("DateStyle", "ISO, MDY"),
        ("default_transaction_read_only", "on"), ("in_hot_standby", "off"), ("integer_datetimes", "on"),
        ("IntervalStyle", "postgres"), ("is_superuser", "off"), ("server_encoding", "UTF8"),
        ("server_version", "15.8"), ("session_authorization", "app_ro"), ("standard_conforming_strings", "on"),
        ("TimeZone", "UTC"),
    ]

    var machine: SessionMachine
    /// Bytes the client sent that the machine has not consumed yet (the client leg's inbound).
    var fromClient = ByteBuffer()
    var fromServer = ByteBuffer()
    var toServer = ByteBuffer()
    var toClient = ByteBuffer()
    var events: [SessionMachine.Event] = []
    var actions: [SessionMachine.Action] = []
    var closed: (reason: String, error: ErrorFields?)?
    var released = false
    var requests: [SessionMachine.ClassificationRequest] = []
    /// False: a classify action is left unanswered, as while a classifier thread works.
    var classifiesInline = true
    var classifier = CachingStatementClassifier()
    var now: Int64 = 0

    init(readOnly: Bool = false, followsStatements: Bool = true, maxMessageSize: Int = 1 << 20,
         maxStatementSize: Int = 1 << 20, parameters: [(String, String)] = SessionHarness.pg15Parameters,
         pooling: SessionMachine.TransactionPooling? = nil, maxHeldServerBody: Int = SessionMachine.maxHeldServerBody,
         keptTexts: KeptTextBudget? = nil) {
        var tokenCount = 0
        let settings = readOnly
            ? SessionMachine.ReadOnlySettings(identity: "agent", maxStatementSize: maxStatementSize,
                                              tokens: { tokenCount += 1; return "tok\(tokenCount)z" })
            : nil
        machine = SessionMachine(.init(maxMessageSize: maxMessageSize, readOnly: settings, followsStatements: followsStatements,
                                       transactionPooling: pooling, maxHeldServerBody: maxHeldServerBody, keptTexts: keptTexts),
                                 backendProcessID: 4242, backendSecretKey: [1, 2, 3, 4], serverParameters: parameters)
    }

    // MARK: Feeding

    func client(_ messages: FrontendMessage...) {
        for message in messages { message.encode(into: &fromClient) }
        pumpClient()
    }

    func clientBytes(_ bytes: some Collection<UInt8>) {
        fromClient.writeBytes(bytes)
        pumpClient()
    }

    func server(_ messages: BackendMessage...) {
        for message in messages { message.encode(into: &fromServer) }
        pumpServer()
    }

    func serverBytes(_ bytes: some Collection<UInt8>) {
        fromServer.writeBytes(bytes)
        pumpServer()
    }

    func pumpClient() {
        while fromClient.readableBytes > 0 && closed == nil && !released {
            now += 1
            if !run(machine.clientStep(in: fromClient, now: now)) { break }
        }
        events += machine.takeEvents()
    }

    func pumpServer() {
        while fromServer.readableBytes > 0 && closed == nil {
            now += 1
            if !run(machine.serverStep(in: fromServer, now: now)) { break }
        }
        events += machine.takeEvents()
    }

    /// Answers the pending classification (as a classifier thread's answer arriving).
    func answerClassification(_ result: ClassificationResult? = nil, statementOffsets: [Int]? = nil) {
        let request = requests.last
        let answer = result ?? request.map { classifier.classify(sql: $0.sql, catalog: .empty) } ?? ReadOnlyGate.refusing(ReadOnlyGate.unclassified)
        var offsets = statementOffsets
        if offsets == nil, let request, request.isQuery,
           ReadOnlyGate.keepsStatementsBefore(answer, refusing: machine.statementRefusals) {
            offsets = StatementSplitter.statementOffsets(request.sql)
        }
        if run(machine.classified(answer, statementOffsets: offsets)) { pumpClient() }
        events += machine.takeEvents()
    }

    @discardableResult
    private func run(_ action: SessionMachine.Action) -> Bool {
        actions.append(action)
        switch action {
        case .forwardToServer(let count):
            toServer.writeBytes(fromClient.readableBytesView.prefix(count))
            fromClient.moveReaderIndex(forwardBy: count)
        case .replaceToServer(let consumed, let bytes), .rewriteToServer(let consumed, let bytes):
            toServer.writeBytes(bytes.readableBytesView)
            fromClient.moveReaderIndex(forwardBy: consumed)
        case .discardFromClient(let count):
            fromClient.moveReaderIndex(forwardBy: count)
        case .forwardToClient(let count):
            toClient.writeBytes(fromServer.readableBytesView.prefix(count))
            fromServer.moveReaderIndex(forwardBy: count)
        case .discardFromServer(let count):
            fromServer.moveReaderIndex(forwardBy: count)
        case .replaceToClient(let consumed, let bytes):
            toClient.writeBytes(bytes.readableBytesView)
            fromServer.moveReaderIndex(forwardBy: consumed)
        case .classify(let request):
            requests.append(request)
            guard classifiesInline else { return false }
            var result = classifier.classify(sql: request.sql, catalog: .empty)
            if request.sql.contains("portcullis-test-timeout") { result = ReadOnlyGate.refusing(SessionMachine.classificationTimedOut) }
            var offsets: [Int]?
            if request.isQuery && ReadOnlyGate.keepsStatementsBefore(result, refusing: machine.statementRefusals) {
                offsets = StatementSplitter.statementOffsets(request.sql)
            }
            return run(machine.classified(result, statementOffsets: offsets))
        case .releaseServer(let consumed):
            fromClient.moveReaderIndex(forwardBy: consumed)
            released = true
            return false
        case .terminate(let consumed):
            fromClient.moveReaderIndex(forwardBy: consumed)
            fromClient.clear()
            return false
        case .close(let reason, let error):
            closed = (reason, error)
            return false
        case .wait:
            return false
        }
        return true
    }

    // MARK: Reading what was sent

    /// The messages the server was sent since the last call, decoded.
    func sentToServer(file: StaticString = #filePath, line: UInt = #line) -> [FrontendMessage] {
        defer { toServer.clear() }
        return Self.frames(in: toServer).compactMap { frame, bytes in
            var copy = bytes
            do { return try FrontendMessage.decode(frame: frame, from: &copy) } catch {
                XCTFail("undecodable message to the server: \(error)", file: file, line: line)
                return nil
            }
        }
    }

    /// The messages the client was sent since the last call, decoded.
    func sentToClient(file: StaticString = #filePath, line: UInt = #line) -> [BackendMessage] {
        defer { toClient.clear() }
        return Self.frames(in: toClient).compactMap { frame, bytes in
            var copy = bytes
            do { return try BackendMessage.decode(frame: frame, from: &copy) } catch {
                XCTFail("undecodable message to the client: \(error)", file: file, line: line)
                return nil
            }
        }
    }

    static func frames(in buffer: ByteBuffer) -> [(MessageFrame, ByteBuffer)] {
        var rest = buffer
        var out: [(MessageFrame, ByteBuffer)] = []
        let decoder = FrameDecoder(maxMessageLength: Int(Int32.max))
        while let frame = try? decoder.peekFrame(in: rest), rest.readableBytes >= frame.totalLength,
              let bytes = rest.readSlice(length: frame.totalLength) {
            out.append((frame, bytes))
        }
        XCTAssertEqual(rest.readableBytes, 0, "whole frames only")
        return out
    }

    /// Finished statements reported so far.
    var records: [Record] {
        events.compactMap { if case .statementFinished(let record) = $0 { record } else { nil } }
    }

    var catalogChanges: Int {
        events.filter { $0 == .catalogChanged }.count
    }

    // MARK: Message builders (PostgreSQL 15's replies)

    static func encoded(_ messages: [FrontendMessage]) -> [UInt8] {
        var out = ByteBuffer()
        for message in messages { message.encode(into: &out) }
        return Array(out.readableBytesView)
    }

    static func encoded(_ messages: [BackendMessage]) -> [UInt8] {
        var out = ByteBuffer()
        for message in messages { message.encode(into: &out) }
        return Array(out.readableBytesView)
    }

    static func rowDescription(_ column: String) -> BackendMessage {
        var payload: [UInt8] = [0, 1] + Array(column.utf8) + [0]
        payload += [0, 0, 0, 0, 0, 0, 0, 0, 0, 23, 0, 4, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0]
        return .raw(type: UInt8(ascii: "T"), payload: payload)
    }

    static func dataRow(_ value: String) -> BackendMessage {
        let bytes = Array(value.utf8)
        let length = UInt32(bytes.count)
        return .raw(type: UInt8(ascii: "D"), payload: [0, 1, UInt8(length >> 24), UInt8((length >> 16) & 0xFF),
                                                       UInt8((length >> 8) & 0xFF), UInt8(length & 0xFF)] + bytes)
    }

    /// CopyInResponse / CopyOutResponse: text format, one column.
    static func copyResponse(_ type: Character) -> BackendMessage {
        .raw(type: UInt8(ascii: type.unicodeScalars.first!), payload: [0, 0, 1, 0, 0])
    }

    static func copyData(_ text: String) -> BackendMessage {
        .raw(type: UInt8(ascii: "d"), payload: Array(text.utf8))
    }

    static func error(_ sqlState: String, _ message: String) -> BackendMessage {
        .errorResponse(.error(sqlState: sqlState, message: message))
    }

    static func bind(portal: String = "", statement: String = "", parameters: [[UInt8]?] = []) -> FrontendMessage {
        .bind(.init(portal: portal, statement: statement, parameterFormats: [], parameters: parameters, resultFormats: []))
    }
}

/// Short names for the replies the tests send.
let ready = BackendMessage.readyForQuery(.idle)
let readyInTransaction = BackendMessage.readyForQuery(.inTransaction)
let readyFailed = BackendMessage.readyForQuery(.failed)
func complete(_ tag: String) -> BackendMessage { .commandComplete(tag: tag) }
