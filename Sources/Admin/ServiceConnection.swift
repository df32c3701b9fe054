import CLibPQ
import Glibc

/// A one-shot, blocking libpq connection for the proxy's own catalog queries (role checks,
/// role membership, catalog snapshots). Call off the event loops.
struct ServiceConnection: ~Copyable {
    private let connection: OpaquePointer

    /// - Parameter purpose: says what failed, e.g. "to read role membership".
    init(conninfo: String, purpose: String) throws(AdminError) {
        guard let connection = PQconnectdb(conninfo) else { throw AdminError(description: "out of memory") }
        guard PQstatus(connection) == CONNECTION_OK else {
            let message = String(cString: PQerrorMessage(connection)).trimmingTrailingNewlines
            PQfinish(connection)
            throw AdminError(description: "could not connect \(purpose): \(message)")
        }
        self.connection = connection
    }

    deinit { PQfinish(connection) }

    /// Runs a command that returns no rows (SET ...).
    func execute(_ sql: String) throws(AdminError) {
        guard let result = PQexec(connection, sql) else { throw AdminError(description: "\(sql) failed") }
        defer { PQclear(result) }
        guard PQresultStatus(result) == PGRES_COMMAND_OK else {
            throw AdminError(description: "\(sql) failed: \(String(cString: PQresultErrorMessage(result)).trimmingTrailingNewlines)")
        }
    }

    /// Runs a query and returns its rows (NULL as nil); `columns` is checked.
    func rows(_ sql: String, columns: Int32, what: String) throws(AdminError) -> [[String?]] {
        guard let result = PQexec(connection, sql) else { throw AdminError(description: "\(what) failed") }
        defer { PQclear(result) }
        guard PQresultStatus(result) == PGRES_TUPLES_OK, PQnfields(result) == columns else {
            throw AdminError(description: "\(what) failed: \(String(cString: PQresultErrorMessage(result)).trimmingTrailingNewlines)")
        }
        var rows: [[String?]] = []
        for row in 0..<PQntuples(result) {
            rows.append((0..<columns).map { column in
                PQgetisnull(result, row, column) != 0 ? nil : String(cString: PQgetvalue(result, row, column))
            })
        }
        return rows
    }

    /// Runs a query with text parameters (`$1`, ...: PQexecParams, so a parameter is never
    /// parsed as SQL) and returns its rows (NULL as nil); `columns` is checked.
    func rows(_ sql: String, parameters: [String], columns: Int32, what: String) throws(AdminError) -> [[String?]] {
        let copies = parameters.map { strdup($0) }
        defer { for copy in copies { free(copy) } }
        let values: [UnsafePointer<CChar>?] = copies.map { $0.map { UnsafePointer($0) } }
        guard let result = PQexecParams(connection, sql, Int32(values.count), nil, values, nil, nil, 0) else { throw AdminError(description: "\(what) failed") }
        defer { PQclear(result) }
        guard PQresultStatus(result) == PGRES_TUPLES_OK else {
            throw AdminError(description: "\(what) failed: \(String(cString: PQresultErrorMessage(result)).trimmingTrailingNewlines)")
        }
        guard PQnfields(result) == columns else {
            throw AdminError(description: "\(what) failed: it returned \(PQnfields(result)) columns, expected \(columns)")
        }
        var rows: [[String?]] = []
        for row in 0..<PQntuples(result) {
            rows.append((0..<columns).map { column in
                PQgetisnull(result, row, column) != 0 ? nil : String(cString: PQgetvalue(result, row, column))
            })
        }
        return rows
    }
}
