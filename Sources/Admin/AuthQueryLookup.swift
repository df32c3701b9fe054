import Config

/// Reads one role's password verifier from the upstream for `password=auth_query` identities,
/// as PgBouncer's auth_query does: the auth user connects (libpq, the entry's TLS settings)
/// and runs the configured query with the client's user name as `$1`; the query answers
/// (name, verifier) in pg_authid.rolpassword form (PostgreSQL docs 53.8 pg_authid).
/// Blocking: call it off the event loops. Neither the verifier nor the auth password ever
/// appears in an error.
public enum AuthQueryLookup {
    /// nil when the role does not exist, has no password (NULL) or its stored secret is not a
    /// SCRAM-SHA-256 verifier or md5 hash: such a login gets the mock exchange.
    public static func lookup(target: DatabaseTarget, source: AuthQuerySource, user: String) throws(AdminError) -> ClientPasswordVerifier? {
        var lookupTarget = target
        lookupTarget.dbname = source.dbname
        let connection = try ServiceConnection(
            conninfo: conninfo(target: lookupTarget, source: source),
            purpose: "to database \"\(source.dbname)\" as \"\(source.user)\" for auth_query")
        let rows = try connection.rows(source.query, parameters: [user], columns: 2, what: "auth_query")
        guard let text = rows.first?[1] else { return nil }
        return ClientPasswordVerifier.stored(text)
    }

    /// libpq keeps the last value of a keyword given twice, so these replace check-role's
    /// connect_timeout and application_name; statement_timeout bounds the query itself, and
    /// search_path is pinned to pg_catalog, pg_temp.
    static func conninfo(target: DatabaseTarget, source: AuthQuerySource) -> String {
        let (seconds, attoseconds) = source.timeout.components
        let wholeSeconds = max(2, seconds + (attoseconds > 0 ? 1 : 0))
        let milliseconds = seconds * 1000 + attoseconds / 1_000_000_000_000_000
        return Conninfo.make(target: target, user: source.user, password: source.password?.reveal())
            + " connect_timeout=\(Conninfo.quote(String(wholeSeconds)))"
            + " application_name='portcullis auth_query'"
            // search_path from the startup packet wins over ALTER DATABASE/ROLE … SET (docs 20.1.4):
            // the auth user (often a superuser) must not resolve names through a schema the
            // database's owner controls.
            + " options=\(Conninfo.quote("-c statement_timeout=\(milliseconds) -c search_path=pg_catalog,pg_temp"))"
    }
}
