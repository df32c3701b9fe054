/// The [backup] section: the backup sidecar (docs/BACKUP.md). pg_dump connects through this
/// Portcullis, as a read-only identity, so a backup rides the same upstream pool, TLS and
/// read-only enforcement as every client.
public struct BackupSettings: Sendable {
    /// Where backups and their manifests are stored (local directory; S3 is not built yet).
    public var directory: String = ""
    /// The [identities] entry pg_dump logs in as; it must be mode=read-only.
    public var identity: String = ""
    /// That identity's client password (plaintext or `enc:`); or `passfile`, or neither when
    /// the proxy trusts its Unix socket.
    public var password: Secret?
    /// A libpq password file (PGPASSFILE) for the identity.
    public var passfile: String?
    /// Where pg_dump reaches the proxy: a Unix socket directory or a host name; nil = the first
    /// of `unix_socket_directories`, else `localhost`.
    public var host: String?
    /// CA file for `sslmode=verify-full` over TCP; nil = [tls] client_tls_ca_file.
    public var sslRootCert: String?
    public var compressionLevel: Int = 3
    /// zstd worker threads; 0 = compress on the calling thread.
    public var compressionWorkers: Int = 0
    public var format: BackupDumpFormat = .custom
    /// Keep at most this many good backups per database; nil = no count limit.
    public var keepLast: Int?
    /// Keep good backups newer than this; nil = no age limit.
    public var keepWithin: Duration?
    /// Directory holding pg_dump and pg_restore; nil = /usr/lib/postgresql/15/bin, else PATH.
    public var pgBinDir: String?

    public init() {}
}

/// pg_dump's archive format. Only `custom` is built: `directory` (with `-j`) writes many
/// files, which the single-stream encrypted file does not hold yet.
public enum BackupDumpFormat: String, Sendable, CaseIterable {
    case custom
}

extension ConfigBuilder {
    mutating func applyBackup(_ entry: IniDocument.Entry) throws(SettingError) -> Bool {
        let value = entry.value
        var backup = config.backup ?? BackupSettings()
        defer { config.backup = backup }
        switch entry.key {
        case "directory":
            guard !value.isEmpty else { throw SettingError("must not be empty") }
            backup.directory = value
        case "identity":
            backup.identity = value
        case "password":
            backup.password = value.isEmpty ? nil : Secret(value)
        case "passfile":
            backup.passfile = value.isEmpty ? nil : value
        case "host":
            backup.host = value.isEmpty ? nil : value
        case "sslrootcert":
            backup.sslRootCert = value.isEmpty ? nil : value
        case "compression_level":
            backup.compressionLevel = try SettingValue.integer(value, in: 1...19)
        case "compression_workers":
            backup.compressionWorkers = try SettingValue.integer(value, in: 0...64)
        case "format":
            if value.lowercased() == "directory" {
                throw SettingError("format = directory is not built yet; use custom")
            }
            backup.format = try SettingValue.choice(value, of: BackupDumpFormat.self)
        case "keep_last":
            let count = try SettingValue.integer(value, in: 0...100_000)
            backup.keepLast = count == 0 ? nil : count
        case "keep_within":
            let duration = try SettingValue.duration(value)
            backup.keepWithin = duration == .zero ? nil : duration
        case "pg_bin_dir":
            backup.pgBinDir = value.isEmpty ? nil : value
        default:
            return false
        }
        return true
    }

    mutating func checkBackupRelationships() {
        guard let backup = config.backup else { return }
        let section = "backup"
        if backup.directory.isEmpty {
            report(line: lineForProblem(with: "directory", in: section), "[backup] needs directory")
        }
        if backup.identity.isEmpty {
            report(line: lineForProblem(with: "identity", in: section), "[backup] needs identity (a read-only identity)")
        } else if let identity = config.identities[backup.identity] {
            if identity.mode != .readOnly {
                report(line: lineForProblem(with: "identity", in: section),
                       "identity: \"\(backup.identity)\" must be mode=read-only to take backups")
            }
        } else {
            report(line: lineForProblem(with: "identity", in: section),
                   "identity: \"\(backup.identity)\" is not an entry of [identities]")
        }
        if backup.password != nil && backup.passfile != nil {
            report(line: lineForProblem(with: "passfile", in: section), "set password or passfile, not both")
        }
    }
}
