import CLibPQ
import Foundation

/// One result of a query, as libpq reported it (PostgreSQL docs §34.3, "Command Execution Functions").
struct PQOutcome: Sendable, Equatable, CustomStringConvertible {
    /// `PQresStatus` text, e.g. "PGRES_TUPLES_OK", "PGRES_FATAL_ERROR", "PGRES_COPY_OUT".
    let status: String
    /// SQLSTATE (`PG_DIAG_SQLSTATE`) of an error result, else nil.
    let sqlState: String?
    let message: String?
    /// Data rows in text format; for COPY OUT, one row per copied line.
    let rows: [[String?]]

    var isError: Bool { status == "PGRES_FATAL_ERROR" }

    var description: String {
        if isError { return "\(status) \(sqlState ?? "?????") \(message?.trimmingCharacters(in: .whitespacesAndNewlines) ?? "")" }
        let shown = rows.prefix(3).map { "(" + $0.map { $0 ?? "NULL" }.joined(separator: ", ") + ")" }.joined(separator: " ")
        return "\(status) \(rows.count) row(s)\(rows.isEmpty ? "" : ": ")\(shown.prefix(300))\(rows.count > 3 ? " ..." : "")"
    }
}

/// Which sub-protocol a statement travels in (PostgreSQL docs §55.2.2 and §55.2.3).
enum QueryProtocol: String, Sendable, CaseIterable {
    /// `PQsendQuery`: one Query message; a string may hold several statements.
    case simple
    /// `PQsendQueryParams` with no parameters: Parse/Bind/Describe/Execute/Sync.
    case extended
}

/// A small blocking libpq client for tests: connection, both query protocols, COPY drained or
/// refused, errors as SQLSTATEs. Not thread-safe; one session per thread.
final class LibPQSession {
    fileprivate let connection: OpaquePointer
    private let noticeBox = NoticeBox()

    /// Primary texts of the NOTICE/WARNING/… messages received so far (PQsetNoticeReceiver).
    var notices: [String] { noticeBox.messages }
    /// The notices received so far, forgetting them.
    func takeNotices() -> [String] {
        defer { noticeBox.messages = [] }
        return noticeBox.messages
    }

    /// `conninfo` may hold a password; it is never echoed into errors.
    init(conninfo: String) throws {
        guard let made = PQconnectdb(conninfo) else { throw CommandError(description: "PQconnectdb returned NULL") }
        // Checked before `connection` is set: once every stored property is initialised, a
        // throwing init still runs deinit, which would PQfinish a second time.
        guard PQstatus(made) == CONNECTION_OK else {
            let message = String(cString: PQerrorMessage(made))
            PQfinish(made)
            throw CommandError(description: "connection failed: \(message)")
        }
        connection = made
        // The box outlives the connection (PQfinish in deinit runs before the box is freed).
        PQsetNoticeReceiver(made, { argument, result in
            guard let argument, let result else { return }
            let box = Unmanaged<NoticeBox>.fromOpaque(argument).takeUnretainedValue()
            let primary = PQresultErrorField(result, Int32(UInt8(ascii: "M"))).map { String(cString: $0) }
            box.messages.append(primary ?? String(cString: PQresultErrorMessage(result)))
        }, Unmanaged.passUnretained(noticeBox).toOpaque())
    }

    deinit { PQfinish(connection) }

    var isConnected: Bool { PQstatus(connection) == CONNECTION_OK }

    /// The process ID the server (or the proxy) announced in BackendKeyData.
    var announcedBackendPID: Int32 { PQbackendPID(connection) }

    /// `PQtransactionStatus` as a name: idle, active, intrans, inerror, unknown.
    var transactionStatus: String {
        switch PQtransactionStatus(connection) {
        case PQTRANS_IDLE: return "idle"
        case PQTRANS_ACTIVE: return "active"
        case PQTRANS_INTRANS: return "intrans"
        case PQTRANS_INERROR: return "inerror"
        default: return "unknown"
        }
    }

    /// Every result the statement string produced, in order. A COPY FROM STDIN is ended with
    /// `PQputCopyEnd(errormsg)` so no data is ever sent; COPY TO STDOUT data becomes rows.
    func run(_ sql: String, protocol queryProtocol: QueryProtocol) -> [PQOutcome] {
        let sent: Int32
        switch queryProtocol {
        case .simple: sent = PQsendQuery(connection, sql)
        case .extended: sent = PQsendQueryParams(connection, sql, 0, nil, nil, nil, nil, 0)
        }
        return results(sent: sent)
    }

    /// The extended protocol with declared parameter types (Parse's type OIDs) and text values.
    func run(_ sql: String, parameterTypes: [UInt32], values: [String]) -> [PQOutcome] {
        let types = parameterTypes.map { Oid($0) }
        let copies = values.map { strdup($0) }
        defer { copies.forEach { free($0) } }
        let pointers: [UnsafePointer<CChar>?] = copies.map { UnsafePointer($0) }
        let sent = PQsendQueryParams(connection, sql, Int32(values.count), types, pointers, nil, nil, 0)
        return results(sent: sent)
    }

    /// Every result of what was just sent (`sent`: the PQsend… return value).
    fileprivate func results(sent: Int32) -> [PQOutcome] {
        guard sent == 1 else {
            return [PQOutcome(status: "SEND_FAILED", sqlState: nil, message: String(cString: PQerrorMessage(connection)), rows: [])]
        }
        var outcomes: [PQOutcome] = []
        while let result = PQgetResult(connection) {
            outcomes.append(outcome(of: result))
            PQclear(result)
            if !isConnected { break }
        }
        return outcomes
    }

    /// `run` that must yield one non-error result; its rows.
    func rows(_ sql: String) throws -> [[String?]] {
        let outcomes = run(sql, protocol: .simple)
        guard let last = outcomes.last, !outcomes.contains(where: \.isError) else {
            throw CommandError(description: "query failed: \(sql.prefix(200)): \(outcomes)")
        }
        return last.rows
    }

    private func outcome(of result: OpaquePointer) -> PQOutcome {
        let status = PQresultStatus(result)
        let name = String(cString: PQresStatus(status))
        switch status {
        case PGRES_FATAL_ERROR, PGRES_NONFATAL_ERROR:
            let state = PQresultErrorField(result, Int32(UInt8(ascii: "C"))).map { String(cString: $0) }
            let message = PQresultErrorField(result, Int32(UInt8(ascii: "M"))).map { String(cString: $0) }
            return PQOutcome(status: name, sqlState: state, message: message, rows: [])
        case PGRES_COPY_IN:
            // The statement got as far as accepting data: refuse to send any.
            _ = PQputCopyEnd(connection, "copy refused by the test client")
            return PQOutcome(status: name, sqlState: nil, message: nil, rows: [])
        case PGRES_COPY_OUT:
            var lines: [[String?]] = []
            var buffer: UnsafeMutablePointer<CChar>?
            while true {
                let length = PQgetCopyData(connection, &buffer, 0)
                guard length > 0, let bytes = buffer else { break }
                let raw = UnsafeRawBufferPointer(start: bytes, count: Int(length))
                lines.append([String(decoding: raw, as: UTF8.self)])
                PQfreemem(bytes)
            }
            return PQOutcome(status: name, sqlState: nil, message: nil, rows: lines)
        default:
            var rows: [[String?]] = []
            let columns = PQnfields(result)
            for row in 0..<PQntuples(result) {
                rows.append((0..<columns).map { column in
                    PQgetisnull(result, row, column) == 1 ? nil : String(cString: PQgetvalue(result, row, column))
                })
            }
            return PQOutcome(status: name, sqlState: nil, message: nil, rows: rows)
        }
    }
}

/// Collects notices for one `LibPQSession` (single-threaded, like the session).
private final class NoticeBox {
    var messages: [String] = []
}

extension LibPQSession {
    /// A CancelRequest for this connection's announced key, sent from another thread while a
    /// query runs (libpq's PQcancel is safe to call from a thread other than the connection's).
    final class Canceller: @unchecked Sendable {
        private let handle: OpaquePointer
        fileprivate init(_ handle: OpaquePointer) { self.handle = handle }
        deinit { PQfreeCancel(handle) }

        /// True when the request was sent (PostgreSQL never answers it).
        func cancel() -> Bool {
            var error = [CChar](repeating: 0, count: 256)
            return PQcancel(handle, &error, Int32(error.count)) == 1
        }
    }

    func canceller() -> Canceller? {
        PQgetCancel(connection).map(Canceller.init)
    }
}

extension LibPQSession {
    /// A protocol-level named prepared statement (PQsendPrepare: Parse with a name, Sync).
    func prepare(_ name: String, _ sql: String) -> [PQOutcome] {
        results(sent: PQsendPrepare(connection, name, sql, 0, nil))
    }

    /// Bind/Execute of a named statement with text values (PQsendQueryPrepared).
    func execute(prepared name: String, values: [String]) -> [PQOutcome] {
        let copies = values.map { strdup($0) }
        defer { copies.forEach { free($0) } }
        let pointers: [UnsafePointer<CChar>?] = copies.map { UnsafePointer($0) }
        return results(sent: PQsendQueryPrepared(connection, name, Int32(values.count), pointers, nil, nil, 0))
    }

    /// Describe of a named statement (PQsendDescribePrepared): its parameter count.
    func describe(prepared name: String) -> [PQOutcome] {
        results(sent: PQsendDescribePrepared(connection, name))
    }
}

extension LibPQSession {
    /// The value of a ParameterStatus the connection was last sent (PQparameterStatus).
    func parameterStatus(_ name: String) -> String? {
        PQparameterStatus(connection, name).map { String(cString: $0) }
    }
}
