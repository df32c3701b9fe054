import Config

/// How pg_dump reaches the running Portcullis: its own Unix socket when one is configured (or
/// [backup] host names a directory), else TCP with `sslmode=verify-full`; always as the
/// [backup] identity, which the configuration check made sure is read-only. So the dump goes
/// through the same listener, authentication, read-only enforcement, upstream pool and
/// upstream TLS as every client. Pure: configuration in, conninfo and environment out.
public struct BackupConnection: Equatable, Sendable {
    public var conninfo: String
    /// PGPASSWORD or PGPASSFILE for the child (never on its command line, where `ps` shows it).
    public var environment: [String: String]

    public init(config: PortcullisConfig, backup: BackupSettings, database: String, password: String?) throws(BackupError) {
        // The internal endpoint first: a socket only the proxy's user can open, admitting only
        // the backup identity.
        let host = backup.host ?? backup.internalSocketDirectory ?? config.general.unixSocketDirectories.first ?? "localhost"
        var parts: [(String, String)] = [
            ("host", host),
            ("port", String(config.general.listenPort)),
            ("dbname", database),
            ("user", backup.identity),
            ("application_name", "portcullis-backup"),
        ]
        if !host.hasPrefix("/") {
            guard let ca = backup.sslRootCert ?? config.tls.caFile else {
                throw BackupError("[backup] reaches the proxy over TCP but no CA is known: set [backup] sslrootcert")
            }
            parts += [("sslmode", "verify-full"), ("sslrootcert", ca)]
        }
        conninfo = parts.map { "\($0.0)=\(Self.quote($0.1))" }.joined(separator: " ")
        environment = [:]
        if let password { environment["PGPASSWORD"] = password }
        if let passfile = backup.passfile { environment["PGPASSFILE"] = passfile }
    }

    /// A conninfo value: single-quoted, with `\` and `'` escaped (libpq 34.1.1 Keyword/Value
    /// Connection Strings).
    static func quote(_ value: String) -> String {
        let plain = !value.isEmpty && value.allSatisfy { !$0.isWhitespace && $0 != "'" && $0 != "\\" }
        if plain { return value }
        return "'" + value.replacingBackslashesAndQuotes() + "'"
    }
}

extension String {
    func replacingBackslashesAndQuotes() -> String {
        var out = ""
        for character in self {
            if character == "\\" || character == "'" { out.append("\\") }
            out.append(character)
        }
        return out
    }
}
