/// The smallest configuration the backup settings tests parse: one database, a read-only
/// identity (and a read-write one where a test needs it), and optionally a `[backup]` section
/// naming the read-only identity. Tests append their own lines after it.
enum BackupTestConfig {
    static func ini(database: String = "app", writer: Bool = false, backupDirectory: String? = nil) -> String {
        var lines = [
            "[portcullis]",
            "local_auth_method = trust",
            "[tls]",
            "client_tls = disable",
            "[databases]",
            "\(database) = host=127.0.0.1 port=5432 sslmode=disable",
            "[identities]",
            "reader = mode=read-only server_user=r server_password=x",
        ]
        if writer { lines.append("writer = mode=read-write server_user=w server_password=x") }
        if let backupDirectory { lines += ["[backup]", "directory = \(backupDirectory)", "identity = reader"] }
        return lines.joined(separator: "\n")
    }
}
