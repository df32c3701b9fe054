/// The [backup] section: the backup sidecar (docs/BACKUP.md). pg_dump connects through this
/// Portcullis, as a read-only identity, so a backup rides the same upstream pool, TLS and
/// read-only enforcement as every client.
public struct BackupSettings: Sendable {
    /// Where backups and their manifests are stored with `storage = local`; with `storage =
    /// s3` it only holds the lock file.
    public var directory: String = ""
    public var storage: BackupStorageKind = .local
    /// The S3-compatible store (`storage = s3`).
    public var s3 = S3Settings()
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
    /// pg_dump's `-j` (and pg_restore's, by default) with `format = directory`.
    public var jobs: Int = 1
    /// Keep at most this many good backups per database; nil = no count limit.
    public var keepLast: Int?
    /// Keep good backups newer than this; nil = no age limit.
    public var keepWithin: Duration?
    /// Directory holding pg_dump and pg_restore; nil = /usr/lib/postgresql/15/bin, else PATH.
    public var pgBinDir: String?
    /// A directory (created 0700) for the internal endpoint: a 0600 Unix socket only the
    /// proxy's own user can open, which admits the backup identity only. pg_dump uses it when
    /// set (unless `host` says otherwise).
    public var internalSocketDirectory: String?
    /// How often a long run logs a progress line (bytes, rate, ETA).
    public var progressInterval: Duration = .seconds(30)
    /// `schedule.<database> = <cron>`: backups the daemon takes itself (UTC).
    public var schedules: [String: CronSchedule] = [:]
    /// `schedule.<database> = <cron> [format=...] [jobs=N] [keep_last=N] [keep_within=AGE]`:
    /// what the schedule carries after its five cron fields (format and jobs also apply to
    /// `backup run --database <database>`).
    public var databaseOptions: [String: BackupDatabaseOptions] = [:]

    public init() {}
}

/// Options one database's schedule carries (see `BackupSettings.databaseOptions`).
public struct BackupDatabaseOptions: Sendable, Equatable {
    public var format: BackupDumpFormat?
    public var jobs: Int?
    /// Retention applied after each successful scheduled backup of this database.
    public var keepLast: Int?
    public var keepWithin: Duration?

    public init() {}

    public var hasRetention: Bool { keepLast != nil || keepWithin != nil }

    /// `format=directory jobs=4 keep_last=7 keep_within=1209600s`: what was set, for the log.
    public var description: String {
        var words: [String] = []
        if let format { words.append("format=\(format.rawValue)") }
        if let jobs { words.append("jobs=\(jobs)") }
        if let keepLast { words.append("keep_last=\(keepLast)") }
        if let keepWithin { words.append("keep_within=\(keepWithin.components.seconds)s") }
        return words.joined(separator: " ")
    }

    /// `key=value` words; anything else is an error naming it.
    static func parse(_ words: [Substring]) throws(SettingError) -> BackupDatabaseOptions {
        var options = BackupDatabaseOptions()
        for word in words {
            let parts = word.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2 else { throw SettingError("\"\(word)\": expected key=value after the cron fields") }
            do throws(SettingError) { try options.apply(parts[0].lowercased(), parts[1]) } catch {
                throw SettingError("\(parts[0]): \(error.message)")
            }
        }
        return options
    }

    private mutating func apply(_ key: String, _ value: String) throws(SettingError) {
        switch key {
        case "format":
            format = try SettingValue.choice(value, of: BackupDumpFormat.self)
        case "jobs":
            jobs = try SettingValue.integer(value, in: 1...64)
        case "keep_last":
            let count = try SettingValue.integer(value, in: 0...100_000)
            keepLast = count == 0 ? nil : count
        case "keep_within":
            let duration = try SettingValue.duration(value)
            keepWithin = duration == .zero ? nil : duration
        default:
            throw SettingError("unknown schedule option (format, jobs, keep_last, keep_within)")
        }
    }
}

extension BackupSettings {
    /// The format and jobs for `database`: its schedule's options, else `format` and `jobs`.
    public func dumpOptions(for database: String) -> (format: BackupDumpFormat, jobs: Int) {
        let options = databaseOptions[database]
        return (options?.format ?? format, options?.jobs ?? jobs)
    }
}

public enum BackupStorageKind: String, Sendable, CaseIterable {
    case local
    case s3
}

extension BackupSettings {
    /// The internal endpoint's socket, `<internal_socket_directory>/.s.PGSQL.<port>`.
    public func internalSocketPath(port: UInt16) -> String? {
        internalSocketDirectory.map { SettingValue.socketPath(directory: $0, port: port) }
    }
}

/// `[backup] s3_*`: an S3-compatible object store reached with path-style URLs and SigV4.
public struct S3Settings: Sendable {
    /// `https://s3.<region>.amazonaws.com` when unset.
    public var endpoint: String?
    public var bucket: String = ""
    public var region: String = "us-east-1"
    /// Prepended to every object key, e.g. `portcullis/`.
    public var prefix: String = ""
    public var accessKey: String = ""
    /// Plaintext or `enc:`; never logged.
    public var secretKey: Secret?
    /// CA bundle for an https endpoint; nil = the system's.
    public var caFile: String?
    /// MiB per multipart part (5–512): the most of a backup ever held in memory for upload.
    public var partSizeMiB: Int = 8
    /// Attempts per request (1 = no retries) for transient failures (connection refused or
    /// reset, 5xx, 429), with capped exponential back-off and jitter.
    public var maxAttempts: Int = 5
    /// `path` (`<endpoint>/<bucket>/<key>`) or `virtual` (`<bucket>.<endpoint host>/<key>`).
    public var urlStyle: S3URLStyle = .path

    public init() {}

    public var resolvedEndpoint: String { endpoint ?? "https://s3.\(region).amazonaws.com" }
}

/// How the bucket appears in request URLs.
public enum S3URLStyle: String, Sendable, CaseIterable {
    case path
    case virtual
}

/// pg_dump's archive format: `custom` (one stream) or `directory` (`-Fd -j N`, one stored
/// stream per file pg_dump writes; docs/BACKUP.md).
public enum BackupDumpFormat: String, Sendable, CaseIterable {
    case custom
    case directory
}

extension ConfigBuilder {
    mutating func applyBackup(_ entry: IniDocument.Entry) throws(SettingError) -> Bool {
        let value = entry.value
        var backup = config.backup ?? BackupSettings()
        defer { config.backup = backup }
        if entry.key.hasPrefix("schedule.") {
            let database = String((entry.writtenKey ?? entry.key).dropFirst("schedule.".count))
            guard !database.isEmpty else { throw SettingError("schedule.<database>: the database name is missing") }
            // Five cron fields, then optional key=value words.
            let words = value.split(whereSeparator: { $0 == " " || $0 == "\t" })
            let cron = words.filter { !$0.contains("=") }.joined(separator: " ")
            backup.schedules[database] = try CronSchedule(cron)
            let options = try BackupDatabaseOptions.parse(words.filter { $0.contains("=") })
            if options == BackupDatabaseOptions() {
                backup.databaseOptions[database] = nil
            } else {
                backup.databaseOptions[database] = options
            }
            return true
        }
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
            backup.format = try SettingValue.choice(value, of: BackupDumpFormat.self)
        case "jobs":
            backup.jobs = try SettingValue.integer(value, in: 1...64)
        case "keep_last":
            let count = try SettingValue.integer(value, in: 0...100_000)
            backup.keepLast = count == 0 ? nil : count
        case "keep_within":
            let duration = try SettingValue.duration(value)
            backup.keepWithin = duration == .zero ? nil : duration
        case "storage":
            backup.storage = try SettingValue.choice(value, of: BackupStorageKind.self)
        case "s3_endpoint":
            guard value.isEmpty || value.hasPrefix("http://") || value.hasPrefix("https://") else {
                throw SettingError("must be an http:// or https:// URL")
            }
            backup.s3.endpoint = value.isEmpty ? nil : value
        case "s3_bucket":
            backup.s3.bucket = value
        case "s3_region":
            guard !value.isEmpty else { throw SettingError("must not be empty") }
            backup.s3.region = value
        case "s3_prefix":
            backup.s3.prefix = value
        case "s3_access_key":
            backup.s3.accessKey = value
        case "s3_secret_key":
            backup.s3.secretKey = value.isEmpty ? nil : Secret(value)
        case "s3_ca_file":
            backup.s3.caFile = value.isEmpty ? nil : value
        case "s3_part_size":
            backup.s3.partSizeMiB = try SettingValue.integer(value, in: 5...512)
        case "s3_max_attempts":
            backup.s3.maxAttempts = try SettingValue.integer(value, in: 1...20)
        case "s3_url_style":
            backup.s3.urlStyle = try SettingValue.choice(value, of: S3URLStyle.self)
        case "internal_socket_directory":
            guard value.isEmpty || value.hasPrefix("/") else { throw SettingError("must be an absolute path") }
            backup.internalSocketDirectory = value.isEmpty ? nil : value
        case "progress_interval":
            let duration = try SettingValue.duration(value)
            guard duration >= .seconds(1) else { throw SettingError("must be at least 1s") }
            backup.progressInterval = duration
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
        for database in backup.schedules.keys.sorted() where config.databases[database] == nil && config.databases["*"] == nil {
            report(line: lineForProblem(with: "schedule.\(database.lowercased())", in: section),
                   "schedule.\(database): \"\(database)\" is not an entry of [databases]")
        }
        if let directory = backup.internalSocketDirectory {
            let path = SettingValue.socketPath(directory: directory, port: config.general.listenPort)
            if config.general.unixSocketDirectories.contains(directory) {
                report(line: lineForProblem(with: "internal_socket_directory", in: section),
                       "internal_socket_directory must not be one of unix_socket_directories")
            } else if path.utf8.count > SettingValue.maximumSocketPathLength {
                report(line: lineForProblem(with: "internal_socket_directory", in: section),
                       "internal_socket_directory: socket path \"\(path)\" is longer than \(SettingValue.maximumSocketPathLength) bytes")
            }
        }
        if backup.storage == .s3 {
            if backup.s3.bucket.isEmpty { report(line: lineForProblem(with: "storage", in: section), "storage = s3 needs s3_bucket") }
            // Virtual-hosted style puts the bucket in the host name: it must be a DNS name
            // (Amazon S3 User Guide, "Bucket naming rules").
            let dnsName = backup.s3.bucket.utf8.allSatisfy { ($0 >= 0x61 && $0 <= 0x7a) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x2d || $0 == 0x2e }
            if backup.s3.urlStyle == .virtual && !backup.s3.bucket.isEmpty && !dnsName {
                report(line: lineForProblem(with: "s3_url_style", in: section),
                       "s3_url_style = virtual needs a bucket name of lower-case letters, digits, '-' and '.'")
            }
            if backup.s3.accessKey.isEmpty || backup.s3.secretKey == nil {
                report(line: lineForProblem(with: "storage", in: section), "storage = s3 needs s3_access_key and s3_secret_key")
            }
        }
        if backup.password != nil && backup.passfile != nil {
            report(line: lineForProblem(with: "passfile", in: section), "set password or passfile, not both")
        }
    }
}
