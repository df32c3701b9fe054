import Auth
import BackupFormat
import Config
import Glibc

/// What every backup needs from the configuration: the [backup] settings, the store they name,
/// the master key (`secret_key_file`) and the identity's password. Shared by the CLI and the
/// daemon's scheduler. Reads the key file, so never call it on an event-loop thread.
public struct BackupSetup: Sendable {
    public let config: PortcullisConfig
    public let settings: BackupSettings
    public let store: any BackupStorage
    public let secretKey: SecretKey

    public init(config: PortcullisConfig, configPath: String) throws(BackupError) {
        guard let settings = config.backup else { throw BackupError("\(configPath): no [backup] section") }
        guard let keyPath = config.general.secretKeyFile else {
            throw BackupError("\(configPath): backups are encrypted with secret_key_file, which is not set (portcullis keygen)")
        }
        do { secretKey = try SecretKey.load(path: keyPath) } catch { throw BackupError(error.description) }
        self.config = config
        self.settings = settings
        do { store = try Self.makeStore(settings, secretKey: secretKey) } catch {
            throw BackupError("\(configPath): \(error.description)")
        }
    }

    public var key: BackupKey { BackupKey(material: secretKey.material) }

    /// The store `[backup] storage` names; the S3 secret key decrypted if it is `enc:`.
    public static func makeStore(_ settings: BackupSettings, secretKey: SecretKey?) throws(BackupError) -> any BackupStorage {
        switch settings.storage {
        case .local:
            return BackupStore(directory: settings.directory)
        case .s3:
            guard let secret = settings.s3.secretKey else { throw BackupError("storage = s3 needs s3_secret_key") }
            var plain = secret.reveal()
            if secret.isEncrypted {
                guard let secretKey else { throw BackupError("s3_secret_key is enc: but no secret_key_file is set") }
                do { plain = try secretKey.decrypt(plain) } catch { throw BackupError("s3_secret_key: \(error.description)") }
            }
            var location = S3Location(endpoint: settings.s3.resolvedEndpoint, bucket: settings.s3.bucket, region: settings.s3.region,
                                      prefix: settings.s3.prefix, accessKey: settings.s3.accessKey, secretKey: plain,
                                      caFile: settings.s3.caFile)
            location.retry = S3RetryPolicy(maxAttempts: settings.s3.maxAttempts)
            location.virtualHosted = settings.s3.urlStyle == .virtual
            return S3BackupStore(location: location, lockDirectory: settings.directory, partSize: settings.s3.partSizeMiB << 20)
        }
    }

    /// The identity's client password (decrypted when `enc:`), or nil.
    public func password() throws(BackupError) -> String? {
        guard let secret = settings.password else { return nil }
        guard secret.isEncrypted else { return secret.reveal() }
        do { return try secretKey.decrypt(secret.reveal()) } catch { throw BackupError("[backup] password: \(error.description)") }
    }

    /// A run of `database`, with the dump size of its newest good backup as the estimate that
    /// progress lines compute an ETA from (best effort: none when there is no earlier backup).
    public func job(database: String) throws(BackupError) -> BackupJob {
        let connection = try BackupConnection(config: config, backup: settings, database: database, password: try password())
        var job = BackupJob(store: store, database: database, connection: connection)
        job.compressionLevel = Int32(settings.compressionLevel)
        job.compressionWorkers = Int32(settings.compressionWorkers)
        job.pgBinDir = settings.pgBinDir
        let dump = settings.dumpOptions(for: database)
        job.format = dump.format == .directory ? .directory : .custom
        job.jobs = dump.jobs
        job.progressIntervalNanoseconds = Int64(settings.progressInterval.components.seconds) * 1_000_000_000
        job.estimatedBytes = (try? store.manifests())?.manifests
            .last { $0.database == database && $0.status == .good }?.plaintextBytes
        return job
    }
}

/// How one backup ended, for the log and the audit stream.
public struct BackupOutcome: Sendable {
    public enum Trigger: String, Sendable {
        /// `schedule.<database>` in the daemon.
        case schedule
        /// `portcullis backup run`.
        case command
    }

    public var database: String
    public var trigger: Trigger
    public var storage: String
    /// The good backup's manifest; nil when the run failed.
    public var manifest: BackupManifest?
    public var error: String?
    public var seconds: Int64

    public init(database: String, trigger: Trigger, storage: String, manifest: BackupManifest?, error: String?, seconds: Int64) {
        self.database = database
        self.trigger = trigger
        self.storage = storage
        self.manifest = manifest
        self.error = error
        self.seconds = seconds
    }

    public var succeeded: Bool { manifest != nil }

    /// One line: "backup 0a1b… of app: good, 12.3 MiB dumped, 3.4 MiB stored, 5s (schedule)".
    public var line: String {
        if let manifest {
            return "backup \(manifest.id) of \(database): good, \(ProgressReport.size(manifest.plaintextBytes)) dumped, "
                + "\(ProgressReport.size(manifest.storedBytes)) stored, \(seconds)s (\(trigger.rawValue))"
        }
        return "backup of \(database) failed (\(trigger.rawValue)): \(error ?? "unknown error")"
    }
}

extension BackupRunner {
    /// `run`, timed, its result as an outcome (never throws).
    public static func runForOutcome(_ job: BackupJob, key: BackupKey, trigger: BackupOutcome.Trigger,
                                     progress: ((ProgressReport) -> Void)?) -> BackupOutcome {
        let started = monotonicNanoseconds()
        let seconds = { (monotonicNanoseconds() - started) / 1_000_000_000 }
        do {
            let manifest = try run(job, key: key, progress: progress)
            return BackupOutcome(database: job.database, trigger: trigger, storage: job.store.describe, manifest: manifest,
                                 error: nil, seconds: seconds())
        } catch {
            return BackupOutcome(database: job.database, trigger: trigger, storage: job.store.describe, manifest: nil,
                                 error: error.description, seconds: seconds())
        }
    }
}
