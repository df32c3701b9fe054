import CLibPQ
import Config

/// One privilege a read-only role should not have.
public struct RoleFinding: Equatable, Sendable, CustomStringConvertible {
    public var kind: String
    public var detail: String
    public var description: String { "\(kind): \(detail)" }
}

public struct AdminError: Error, Sendable, CustomStringConvertible {
    public var description: String
}

/// Checks, connected AS the role, everything that would let it write, change schema or act
/// outside its session — directly or through role membership (has_*_privilege and pg_has_role
/// follow membership). PostgreSQL docs 9.26 System Information Functions.
public enum RoleAudit {
    static let query = """
        SELECT 'role attribute', r.rolname || ' has ' || a.attr
          FROM pg_roles r,
               LATERAL (VALUES ('SUPERUSER', r.rolsuper), ('CREATEROLE', r.rolcreaterole), ('CREATEDB', r.rolcreatedb),
                               ('REPLICATION', r.rolreplication), ('BYPASSRLS', r.rolbypassrls)) AS a(attr, granted)
         WHERE a.granted AND pg_has_role(current_user, r.oid, 'MEMBER')
        UNION ALL
        SELECT 'predefined role', 'member of ' || r.rolname
          FROM pg_roles r
         WHERE r.rolname IN ('pg_write_all_data', 'pg_execute_server_program', 'pg_read_server_files',
                             'pg_write_server_files', 'pg_signal_backend', 'pg_checkpoint', 'pg_create_subscription',
                             'pg_use_reserved_connections')
           AND pg_has_role(current_user, r.oid, 'MEMBER')
        UNION ALL
        SELECT 'database privilege', quote_ident(d.datname) || ': ' || v.p
          FROM pg_database d, LATERAL (VALUES ('CREATE'), ('TEMPORARY')) AS v(p)
         WHERE d.datallowconn AND has_database_privilege(current_user, d.oid, v.p)
        UNION ALL
        SELECT 'schema privilege', quote_ident(n.nspname) || ': CREATE'
          FROM pg_namespace n
         WHERE has_schema_privilege(current_user, n.oid, 'CREATE')
           AND n.nspname !~ '^pg_(toast_)?temp_'
        UNION ALL
        SELECT 'table privilege', format('%I.%I: %s', n.nspname, c.relname, v.p)
          FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace,
               LATERAL (VALUES ('INSERT'), ('UPDATE'), ('DELETE'), ('TRUNCATE'), ('REFERENCES'), ('TRIGGER')) AS v(p)
         WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f')
           AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_toast'
           AND has_table_privilege(current_user, c.oid, v.p)
        UNION ALL
        SELECT 'sequence privilege', format('%I.%I: %s', n.nspname, c.relname, v.p)
          FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace, LATERAL (VALUES ('USAGE'), ('UPDATE')) AS v(p)
         WHERE c.relkind = 'S' AND has_sequence_privilege(current_user, c.oid, v.p)
        UNION ALL
        SELECT 'ownership', format('%I.%I', n.nspname, c.relname)
          FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
           AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_toast'
           AND pg_has_role(current_user, c.relowner, 'MEMBER')
        ORDER BY 1, 2
        """

    /// Connects with libpq using the database entry's TLS settings and the given credentials.
    public static func findings(target: DatabaseTarget, user: String, password: String?) throws(AdminError) -> [RoleFinding] {
        let connection = try ServiceConnection(conninfo: Conninfo.make(target: target, user: user, password: password),
                                               purpose: "to database \"\(target.name)\" as \"\(user)\"")
        var findings: [RoleFinding] = []
        for row in try connection.rows(query, columns: 2, what: "role check") {
            findings.append(RoleFinding(kind: row[0] ?? "", detail: row[1] ?? ""))
        }
        return findings
    }
}

/// libpq keyword/value connection strings (PostgreSQL docs 34.1.1): values single-quoted with
/// backslash and quote escaped.
public enum Conninfo {
    public static func quote(_ value: String) -> String {
        var out = "'"
        for ch in value {
            if ch == "\\" || ch == "'" { out.append("\\") }
            out.append(ch)
        }
        return out + "'"
    }

    public static func make(target: DatabaseTarget, user: String, password: String?) -> String {
        var parts: [(String, String)] = [("host", target.host), ("port", String(target.port)), ("user", user),
                                         ("dbname", target.dbname ?? target.name), ("sslmode", target.sslMode.rawValue),
                                         ("connect_timeout", "10"), ("application_name", "portcullis check-role")]
        if let hostaddr = target.hostaddr { parts.append(("hostaddr", hostaddr)) }
        if let password { parts.append(("password", password)) }
        if let root = target.sslRootCert { parts.append(("sslrootcert", root)) }
        if let cert = target.sslCert { parts.append(("sslcert", cert)) }
        if let key = target.sslKey { parts.append(("sslkey", key)) }
        return parts.map { "\($0.0)=\(quote($0.1))" }.joined(separator: " ")
    }
}

extension String {
    var trimmingTrailingNewlines: String {
        var s = self
        while s.last == "\n" { s.removeLast() }
        return s
    }
}
