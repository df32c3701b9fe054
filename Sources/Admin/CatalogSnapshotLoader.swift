import CLibPQ
import Policy

/// Loads a ``CatalogSnapshot`` of one upstream database over a one-shot libpq connection.
///
/// Connect as the upstream role the read-only identity maps to, or as a superuser: the query
/// reads only catalogs every role may read, but a role sees the relations of every schema in
/// pg_class regardless of its privileges, so either gives the full picture.
public enum CatalogSnapshotLoader {
    /// `conninfo`: a libpq connection string (PostgreSQL docs 34.1.1), e.g. from
    /// ``Conninfo/make(target:user:password:)``.
    public static func load(conninfo: String) throws(AdminError) -> CatalogSnapshot {
        guard let connection = PQconnectdb(conninfo) else { throw AdminError(description: "out of memory") }
        defer { PQfinish(connection) }
        guard PQstatus(connection) == CONNECTION_OK else {
            throw AdminError(description: "could not connect to load the catalog snapshot: \(String(cString: PQerrorMessage(connection)).trimmingTrailingNewlines)")
        }
        // The recursive query's estimates would trigger JIT compilation costing far more than
        // the query; search_path empty so nothing the session inherits shadows a catalog.
        try execute(connection, "SET jit = off")
        try execute(connection, "SET search_path = ''")
        guard let result = PQexec(connection, CatalogSnapshot.query) else { throw AdminError(description: "query failed") }
        defer { PQclear(result) }
        guard PQresultStatus(result) == PGRES_TUPLES_OK, PQnfields(result) == 8 else {
            throw AdminError(description: "catalog snapshot query failed: \(String(cString: PQresultErrorMessage(result)).trimmingTrailingNewlines)")
        }
        var rows: [CatalogSnapshot.Row] = []
        for row in 0..<PQntuples(result) {
            func value(_ column: Int32) -> String? {
                PQgetisnull(result, row, column) != 0 ? nil : String(cString: PQgetvalue(result, row, column))
            }
            rows.append(CatalogSnapshot.Row(schema: value(0) ?? "", name: value(1) ?? "", relkind: value(2) ?? "",
                                            cause: value(3) ?? "", detail: value(4) ?? "",
                                            viaSchema: value(5), viaName: value(6), viaRelkind: value(7)))
        }
        return CatalogSnapshot(rows: rows)
    }

    private static func execute(_ connection: OpaquePointer, _ sql: String) throws(AdminError) {
        guard let result = PQexec(connection, sql) else { throw AdminError(description: "\(sql) failed") }
        defer { PQclear(result) }
        guard PQresultStatus(result) == PGRES_COMMAND_OK else {
            throw AdminError(description: "\(sql) failed: \(String(cString: PQresultErrorMessage(result)).trimmingTrailingNewlines)")
        }
    }
}
