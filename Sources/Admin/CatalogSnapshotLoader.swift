import Policy

/// Loads a ``CatalogSnapshot`` of one upstream database over a one-shot libpq connection.
///
/// Connect as the upstream role the read-only identity maps to, or as a superuser: the query
/// reads only catalogs every role may read, but a role sees the relations of every schema in
/// pg_class regardless of its privileges, so either gives the full picture.
public enum CatalogSnapshotLoader {
    /// `conninfo`: a libpq connection string (PostgreSQL docs 34.1.1), e.g. from
    /// ``Conninfo/make(target:user:password:)``.
    /// `readableForeignServers`: foreign servers whose tables are not flagged; `trustedExtensions`:
    /// extensions whose members count as built-in. The queries read both from session settings
    /// (`portcullis.readable_foreign_servers`, `portcullis.trusted_extensions`, JSON arrays).
    public static func load(conninfo: String, readableForeignServers: [String] = [],
                            trustedExtensions: [String] = []) throws(AdminError) -> CatalogSnapshot {
        let connection = try ServiceConnection(conninfo: conninfo, purpose: "to load the catalog snapshot")
        // The recursive query's estimates would trigger JIT compilation costing far more than
        // the query; search_path empty so nothing the session inherits shadows a catalog, and
        // every name the queries print is schema-qualified.
        try connection.execute("SET jit = off")
        try connection.execute("SET search_path = ''")
        // A catalog that makes the queries run away (they are bounded, but the server may be
        // slow) fails this load; the previous snapshot stays in force.
        try connection.execute("SET statement_timeout = '120s'")
        // Names arrive as UTF-8 whatever the database's encoding, as the gate compares them.
        try connection.execute("SET client_encoding = 'UTF8'")
        let serverEncoding = try connection.rows("SELECT current_setting('server_encoding')", columns: 1,
                                                 what: "server encoding query").first?.first ?? nil
        for (setting, names) in [("portcullis.readable_foreign_servers", readableForeignServers),
                                 ("portcullis.trusted_extensions", trustedExtensions)] where !names.isEmpty {
            let json = "[" + names.map(jsonString).joined(separator: ",") + "]"
            try connection.execute("SET \(setting) = '\(json.replacingOccurrences(of: "'", with: "''"))'")
        }
        let rows = try connection.rows(CatalogSnapshot.query, columns: 8, what: "catalog snapshot query").map { value in
            CatalogSnapshot.Row(schema: value[0] ?? "", name: value[1] ?? "", relkind: value[2] ?? "",
                                cause: value[3] ?? "", detail: value[4] ?? "",
                                viaSchema: value[5], viaName: value[6], viaRelkind: value[7])
        }
        var objects: [CatalogSnapshot.ObjectRow] = []
        for value in try connection.rows(CatalogSnapshot.objectsQuery, columns: 6, what: "catalog objects query") {
            // An unknown kind or a malformed OID fails the load (the previous snapshot stays in
            // force) rather than being skipped.
            guard let kind = value[0].flatMap(CatalogSnapshot.ObjectRow.Kind.init(rawValue:)),
                  let oid = value[1].flatMap({ UInt32($0) }) else {
                throw AdminError(description: "catalog objects query returned an unexpected row")
            }
            objects.append(CatalogSnapshot.ObjectRow(kind: kind, oid: oid, schema: value[2] ?? "", name: value[3] ?? "",
                                                     detail: value[4] ?? "", relkind: value[5]))
        }
        return CatalogSnapshot(rows: rows, objects: objects, serverEncoding: serverEncoding)
    }
}

/// A JSON string literal (RFC 8259) for a server name.
private func jsonString(_ value: String) -> String {
    var out = "\""
    for scalar in value.unicodeScalars {
        switch scalar {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case _ where scalar.value < 0x20:
            let hex = String(scalar.value, radix: 16)
            out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
        default: out.unicodeScalars.append(scalar)
        }
    }
    return out + "\""
}
