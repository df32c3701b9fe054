/// The SQL for a least-privilege upstream role for read-only identities: it can connect and
/// read, and nothing else — no CREATE or TEMP on the database, no CREATE on schemas, SELECT only
/// on tables and sequences (not USAGE, so no nextval), read-only by default as a second wall.
/// (PostgreSQL docs 5.7 Privileges, 22.5 Predefined Roles, ALTER DEFAULT PRIVILEGES.)
public enum ReadOnlyRoleSQL {
    public static func make(role: String, database: String, schemas: [String] = ["public"], owners: [String] = []) -> String {
        let r = quoteIdentifier(role)
        let db = quoteIdentifier(database)
        var lines: [String] = [
            "-- Least-privilege role for Portcullis read-only identities (run as a superuser or the owner of \(db)).",
            "CREATE ROLE \(r) LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS;",
            "-- Read-only by default even if something reaches the server without the proxy.",
            "ALTER ROLE \(r) SET default_transaction_read_only = on;",
            "-- Set its password with psql's \\password \(r), then put it in server_password= (portcullis secret encrypt).",
            "GRANT CONNECT ON DATABASE \(db) TO \(r);",
            "-- PUBLIC may create temporary tables (and, before PostgreSQL 15, objects in schema public) by",
            "-- default, and every role inherits PUBLIC: take those away from PUBLIC and grant them back",
            "-- to the roles that need them.",
            "REVOKE TEMPORARY, CREATE ON DATABASE \(db) FROM PUBLIC;",
        ]
        for schema in schemas {
            let s = quoteIdentifier(schema)
            lines.append("REVOKE CREATE ON SCHEMA \(s) FROM PUBLIC;")
            lines.append("GRANT USAGE ON SCHEMA \(s) TO \(r);")
            lines.append("GRANT SELECT ON ALL TABLES IN SCHEMA \(s) TO \(r);")
            lines.append("GRANT SELECT ON ALL SEQUENCES IN SCHEMA \(s) TO \(r);")
            let forRoles = owners.isEmpty ? [""] : owners.map { " FOR ROLE \(quoteIdentifier($0))" }
            for forRole in forRoles {
                lines.append("ALTER DEFAULT PRIVILEGES\(forRole) IN SCHEMA \(s) GRANT SELECT ON TABLES TO \(r);")
                lines.append("ALTER DEFAULT PRIVILEGES\(forRole) IN SCHEMA \(s) GRANT SELECT ON SEQUENCES TO \(r);")
            }
        }
        lines.append("-- Nothing else: no EXECUTE grants beyond PUBLIC's, no membership in other roles.")
        return lines.joined(separator: "\n") + "\n"
    }

    /// PostgreSQL's quote_ident for any name: always double-quoted, quotes doubled.
    public static func quoteIdentifier(_ name: String) -> String {
        "\"" + name.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }
}

extension String {
    func replacingOccurrences(of target: String, with replacement: String) -> String {
        guard !target.isEmpty else { return self }
        var result = ""
        var rest = self[...]
        while let range = rest.range(of: target) {
            result += rest[..<range.lowerBound]
            result += replacement
            rest = rest[range.upperBound...]
        }
        return result + rest
    }
}

extension Substring {
    func range(of target: String) -> Range<Substring.Index>? {
        var index = startIndex
        while index < endIndex {
            if self[index...].hasPrefix(target) {
                return index..<self.index(index, offsetBy: target.count)
            }
            index = self.index(after: index)
        }
        return nil
    }
}
