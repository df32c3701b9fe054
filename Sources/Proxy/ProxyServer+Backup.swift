import Audit
import AuditSink
import Backup
import Config
import Glibc
import Logging

extension AuditEvent {
    /// The `backup` event: how one backup ended, with what the manifest records (never a
    /// secret: the storage is named by endpoint, bucket and prefix or directory only).
    public static func backup(_ outcome: BackupOutcome, timeMicroseconds: Int64) -> AuditEvent {
        var details = [
            AuditDetail("RESULT", outcome.succeeded ? "good" : "failed"),
            AuditDetail("DATABASE", outcome.database),
            AuditDetail("TRIGGER", outcome.trigger.rawValue),
            AuditDetail("STORAGE", outcome.storage),
            AuditDetail("DURATION_S", String(outcome.seconds)),
        ]
        if let manifest = outcome.manifest {
            details += [AuditDetail("BACKUP_ID", manifest.id), AuditDetail("DUMP_BYTES", String(manifest.plaintextBytes)),
                        AuditDetail("STORED_BYTES", String(manifest.storedBytes)), AuditDetail("SHA256", manifest.sha256),
                        AuditDetail("KEY_ID", manifest.keyID)]
        }
        if let error = outcome.error { details.append(AuditDetail("REASON", String(error.prefix(2000)))) }
        return AuditEvent(kind: .backup, timeMicroseconds: timeMicroseconds, priority: outcome.succeeded ? .info : .error,
                          details: details, summary: outcome.line)
    }
}

extension AuditStream {
    /// A scheduled backup's outcome, from the scheduler thread.
    func backupFinished(_ outcome: BackupOutcome) {
        processQueue.submitOrDrop(AuditEvent.backup(outcome, timeMicroseconds: LoopAudit.wallClockMicroseconds()))
    }

    /// Writes one event to the configured sinks and returns when it is written: for
    /// `portcullis backup run`, a process without an audit stream of its own. Nothing when
    /// `audit = off`.
    static func writeOnce(_ event: AuditEvent, settings: AuditSettings) throws {
        guard settings.enabled else { return }
        let writer: AuditWriter
        do {
            writer = try AuditWriter(sinks: try makeSinks(settings), policy: .backpressure,
                                     clock: { LoopAudit.wallClockMicroseconds() })
        } catch let error as ProxyStartupError {
            throw error
        } catch {
            throw ProxyStartupError(description: "could not start the audit writer: \(error)")
        }
        let queue = writer.makeQueue(capacity: 4)
        let failure = SinkFailure()
        writer.onSinkStatus = { name, error in if let error { failure.set("\(name): \(error)") } }
        writer.start()
        queue.submitOrDrop(event)
        // Returns once written; a sink that keeps failing is given up after a few seconds.
        writer.stop()
        if writer.writtenCount == 0 {
            throw ProxyStartupError(description: "the audit event was not written (\(failure.text ?? "unknown error"))")
        }
    }
}

private final class SinkFailure: @unchecked Sendable {
    private var lock = pthread_mutex_t()
    private var message: String?
    init() { pthread_mutex_init(&lock, nil) }
    func set(_ text: String) { pthread_mutex_lock(&lock); message = text; pthread_mutex_unlock(&lock) }
    var text: String? { pthread_mutex_lock(&lock); defer { pthread_mutex_unlock(&lock) }; return message }
}

extension ProxyServer {
    /// `portcullis backup run`'s outcome as a `backup` audit event, written to the sinks of
    /// the configuration's audit settings before the command exits.
    public static func auditBackup(_ outcome: BackupOutcome, settings: AuditSettings) throws {
        try AuditStream.writeOnce(AuditEvent.backup(outcome, timeMicroseconds: LoopAudit.wallClockMicroseconds()), settings: settings)
    }

    /// The daemon's backup scheduler: its log lines and outcomes (log and audit stream).
    static func startBackupScheduler(configPath: String, config: PortcullisConfig, logger: Logger,
                                     audit: AuditStream?) -> BackupScheduler {
        let scheduler = BackupScheduler(configPath: configPath, log: { isError, message in
            if isError { logger.error("\(message)") } else { logger.info("\(message)") }
        }, outcome: { outcome in
            audit?.backupFinished(outcome)
        })
        scheduler.update(config)
        return scheduler
    }
}

extension ProxyServer {
    /// The internal endpoint ([backup] internal_socket_directory): the directory is created
    /// 0700 (an existing one must be a real directory owned by this user, and is set to 0700),
    /// the socket in it 0600, so only the proxy's own user (and root) can connect; sessions on
    /// it admit the backup identity only (ClientStartupMachine.onlyUser).
    static func bindInternalSocket(_ config: PortcullisConfig) throws -> (Int32, String)? {
        guard let directory = config.backup?.internalSocketDirectory else { return nil }
        if mkdir(directory, 0o700) != 0 && errno != EEXIST {
            throw ProxyStartupError(description: "could not create internal_socket_directory \"\(directory)\": \(String(cString: strerror(errno)))")
        }
        var info = stat()
        guard lstat(directory, &info) == 0, (info.st_mode & S_IFMT) == S_IFDIR else {
            throw ProxyStartupError(description: "internal_socket_directory \"\(directory)\" is not a directory (a symbolic link is refused)")
        }
        guard info.st_uid == geteuid() else {
            throw ProxyStartupError(description: "internal_socket_directory \"\(directory)\" is owned by uid \(info.st_uid), not by the user running Portcullis (uid \(geteuid()))")
        }
        // Between these checks and bind(2) nobody else may swap the directory for a link: its
        // parent must be writable only by root or this user (or sticky, like /tmp, where only
        // an entry's owner may rename it).
        let parent = directory.hasSuffix("/") ? String(directory.dropLast()) : directory
        let parentPath = parent.lastIndex(of: "/").map { $0 == parent.startIndex ? "/" : String(parent[..<$0]) } ?? "."
        var parentInfo = stat()
        guard stat(parentPath, &parentInfo) == 0,
              parentInfo.st_uid == 0 || parentInfo.st_uid == geteuid(),
              (parentInfo.st_mode & 0o022) == 0 || (parentInfo.st_mode & S_ISVTX) != 0 else {
            throw ProxyStartupError(description: "internal_socket_directory \"\(directory)\": its parent \"\(parentPath)\" must be owned by root or the user running Portcullis and not writable by others (or sticky)")
        }
        // chmod through a descriptor opened without following links: the directory checked above.
        let descriptor = open(directory, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard descriptor >= 0 else {
            throw ProxyStartupError(description: "could not open internal_socket_directory \"\(directory)\": \(String(cString: strerror(errno)))")
        }
        defer { close(descriptor) }
        var opened = stat()
        guard fstat(descriptor, &opened) == 0, opened.st_ino == info.st_ino, opened.st_dev == info.st_dev,
              fchmod(descriptor, 0o700) == 0 else {
            throw ProxyStartupError(description: "could not chmod 0700 internal_socket_directory \"\(directory)\": \(String(cString: strerror(errno)))")
        }
        do {
            return try ListeningSocket.unix(directory: directory, port: config.general.listenPort, permissions: 0o600, group: nil)
        } catch {
            throw ProxyStartupError(description: "could not create the internal backup socket in \"\(directory)\": \(error)")
        }
    }
}
