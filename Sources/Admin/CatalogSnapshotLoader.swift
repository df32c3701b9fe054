import Policy

/// Loads a ``CatalogSnapshot`` of one upstream database over a one-shot libpq connection.
///
/// Connect as the upstream role the read-only identity maps to, or as a superuser: the query
/// reads only catalogs every role may read, but a role sees the relations of every schema in
/// pg_class regardless of its privileges, so either gives the full picture.
public enum CatalogSnapshotLoader {
    /// Settings the loader's session must have whatever the database's or the role's
    /// defaults say, sent in the start-up packet's `options` (`-c name=value`, PostgreSQL docs
    /// 34.1.2 `options`; src/backend/tcop/postgres.c process_postgres_switches): they are set
    /// with source PGC_S_CLIENT, which outranks PGC_S_DATABASE, PGC_S_USER and
    /// PGC_S_DATABASE_USER (src/include/utils/guc.h GucSource), so `ALTER DATABASE … SET` and
    /// `ALTER ROLE … SET` — which a database's owner, not a superuser, can run — cannot steer
    /// them, and they are in force before the first query (a `SET` would come after the
    /// connection's first idle moment). A failed load keeps the previous snapshot only up to
    /// `catalog_max_age`; these keep the owner from making loads wait or fail at will, or
    /// from changing what the queries read.
    public static let pinnedSettings: [(name: String, value: String)] = [
        // A SERIALIZABLE READ ONLY DEFERRABLE transaction waits for a safe snapshot for as
        // long as any read-write serializable transaction runs (PostgreSQL docs 13.2.3; SET
        // TRANSACTION): a database default of serializable + deferrable, and one open
        // transaction, made every load wait out its statement_timeout.
        ("default_transaction_isolation", "read committed"),
        ("default_transaction_deferrable", "off"),
        // The loader only reads; a read-only session is what it needs.
        ("default_transaction_read_only", "on"),
        // A lock the loader would queue behind (a catalog rewritten by VACUUM FULL, which a
        // database owner may run on its catalogs) fails the load quickly: the refresher tries
        // again within 2 s instead of waiting in the lock queue.
        ("lock_timeout", "5s"),
        // A catalog that makes the queries run away (they are bounded, but the server may be
        // slow) fails this load.
        ("statement_timeout", "120s"),
        // Either would end the session between two of its queries.
        ("idle_session_timeout", "0"),
        ("idle_in_transaction_session_timeout", "0"),
        // Any error would end the session.
        ("exit_on_error", "off"),
        // A library that cannot be loaded fails every connection (plugins directory only, but
        // the owner may name one that does not exist).
        ("local_preload_libraries", ""),
        // The queries' regular expressions are written with backslashes (`(\d+)`): with
        // standard_conforming_strings off they would read `(d+)`, match nothing, and views
        // calling functions would go unflagged.
        ("standard_conforming_strings", "on"),
        // Nothing the session inherits may shadow a catalog; every user object the queries
        // print comes out schema-qualified (reg* output), and not quoted more than needed.
        ("search_path", "pg_catalog"),
        ("quote_all_identifiers", "off"),
        // The recursive queries' estimates would trigger JIT compilation costing far more than
        // the queries.
        ("jit", "off"),
        // Names arrive as UTF-8 whatever the database's encoding, as the gate compares them.
        ("client_encoding", "UTF8"),
    ]

    /// ``pinnedSettings`` as an `options` value: arguments are separated by spaces, and a
    /// space or backslash inside one is escaped with a backslash (PostgreSQL docs 34.1.2;
    /// src/backend/utils/init/postinit.c pg_split_opts): `read\ committed`.
    public static var startupOptions: String {
        pinnedSettings.map { setting in
            var value = ""
            for character in setting.value {
                if character == " " || character == "\\" { value.append("\\") }
                value.append(character)
            }
            return "-c \(setting.name)=\(value)"
        }.joined(separator: " ")
    }

    /// `conninfo`: a libpq connection string in keyword/value form (PostgreSQL docs 34.1.1),
    /// e.g. from ``Conninfo/make(target:user:password:)``; ``pinnedSettings`` are appended to it.
    /// `readableForeignServers`: foreign servers whose tables are not flagged; `trustedExtensions`:
    /// extensions whose members count as built-in. The queries read both from session settings
    /// (`portcullis.readable_foreign_servers`, `portcullis.trusted_extensions`, JSON arrays).
    public static func load(conninfo: String, readableForeignServers: [String] = [],
                            trustedExtensions: [String] = []) throws(AdminError) -> CatalogSnapshot {
        // libpq keeps the last value of a keyword given twice: these replace any options and
        // application_name in `conninfo`.
        let connection = try ServiceConnection(conninfo: conninfo + " application_name='portcullis catalog'"
                                                   + " options=\(Conninfo.quote(startupOptions))",
                                               purpose: "to load the catalog snapshot")
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
        for value in try connection.rows(CatalogSnapshot.objectsQuery, columns: 7, what: "catalog objects query") {
            // An unknown kind or a malformed OID fails the load (the previous snapshot stays in
            // force) rather than being skipped.
            guard let kind = value[0].flatMap(CatalogSnapshot.ObjectRow.Kind.init(rawValue:)),
                  let oid = value[1].flatMap({ UInt32($0) }) else {
                throw AdminError(description: "catalog objects query returned an unexpected row")
            }
            objects.append(CatalogSnapshot.ObjectRow(kind: kind, oid: oid, schema: value[2] ?? "", name: value[3] ?? "",
                                                     detail: value[4] ?? "", relkind: value[5], takesRow: value[6] != "f"))
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
