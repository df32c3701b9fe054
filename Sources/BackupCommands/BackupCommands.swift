import ArgumentParser
import Auth
import Backup
import BackupFormat
import Config
import Glibc
import Proxy

/// `portcullis backup run|list|verify|restore|prune` (docs/BACKUP.md).
public struct BackupCommand: ParsableCommand {
    public init() {}
    public static let configuration = CommandConfiguration(
        commandName: "backup",
        abstract: "Encrypted, compressed logical backups taken through this Portcullis (docs/BACKUP.md).",
        subcommands: [RunBackup.self, ListBackups.self, VerifyBackup.self, RestoreBackup.self, PruneBackups.self])
}

public struct BackupConfigOption: ParsableArguments {
    public init() {}
    @Option(name: [.short, .long], help: "Path of the configuration file (see conf/portcullis.ini).")
    var config: String = "/etc/portcullis/portcullis.ini"
}

func printError(_ message: String) {
    var text = message
    if !text.hasSuffix("\n") { text += "\n" }
    _ = text.utf8CString.withUnsafeBufferPointer { write(2, $0.baseAddress, $0.count - 1) }
}

/// The configuration pieces every backup command needs.
struct BackupContext {
    let setup: BackupSetup
    var config: PortcullisConfig { setup.config }
    var settings: BackupSettings { setup.settings }
    var store: any BackupStorage { setup.store }
    var key: BackupKey { setup.key }

    init(configPath: String) throws(ExitCode) {
        let config: PortcullisConfig
        do { config = try ProxyServer.loadConfiguration(path: configPath) } catch {
            printError("\(error)")
            throw ExitCode(2)
        }
        do { setup = try BackupSetup(config: config, configPath: configPath) } catch {
            printError(error.description)
            throw ExitCode(2)
        }
    }

    /// The current key and any retired key files named with --old-key.
    func keys(oldKeyFiles: [String]) throws(ExitCode) -> [BackupKey] {
        var keys = [key]
        for path in oldKeyFiles {
            do { keys.append(BackupKey(material: try SecretKey.load(path: path).material)) } catch {
                printError(error.description)
                throw ExitCode(2)
            }
        }
        return keys
    }
}

/// Progress on a terminal only (stderr), overwritten in place.
func terminalProgress(_ label: String) -> ((ProgressReport) -> Void)? {
    guard isatty(2) == 1 else { return nil }
    return { report in printError("\r\u{1B}[K\(label): \(report.line)", newline: false) }
}

func printError(_ message: String, newline: Bool) {
    if newline { printError(message); return }
    _ = message.utf8CString.withUnsafeBufferPointer { write(2, $0.baseAddress, $0.count - 1) }
}

func formatTime(_ seconds: Int64) -> String {
    var t = time_t(seconds)
    var parts = tm()
    gmtime_r(&t, &parts)
    var buffer = [CChar](repeating: 0, count: 32)
    let count = strftime(&buffer, buffer.count, "%Y-%m-%d %H:%M:%SZ", &parts)
    return String(decoding: buffer.prefix(count).map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

extension BackupCommand {
    public struct RunBackup: ParsableCommand {
        public init() {}
        public static let configuration = CommandConfiguration(
            commandName: "run", abstract: "Take a backup of one database through this Portcullis.")
        @OptionGroup var options: BackupConfigOption
        @Option(help: "The database to back up (a name clients use).") var database: String
        @Option(help: "pg_dump's archive format: custom or directory (default: the configuration's).") var format: String?
        @Option(help: "Parallel pg_dump jobs for the directory format, 1-64 (default: the configuration's).") var jobs: Int?

        public func run() throws {
            let context = try BackupContext(configPath: options.config)
            var job: BackupJob
            do { job = try context.setup.job(database: database) } catch {
                printError(error.description)
                throw ExitCode(2)
            }
            if let format {
                guard let chosen = DumpFormat(rawValue: format.lowercased()) else {
                    printError("--format must be custom or directory")
                    throw ExitCode(2)
                }
                job.format = chosen
            }
            if let jobs {
                guard (1...64).contains(jobs) else {
                    printError("--jobs must be between 1 and 64")
                    throw ExitCode(2)
                }
                guard job.format == .directory else {
                    printError("--jobs needs the directory format (--format directory)")
                    throw ExitCode(2)
                }
                job.jobs = jobs
            }
            let onTerminal = terminalProgress("backup \(database)")
            // On a terminal the line is redrawn every second; otherwise (cron, a systemd timer:
            // stderr is the log) one line every progress_interval.
            if onTerminal != nil { job.progressIntervalNanoseconds = 1_000_000_000 }
            let progress = onTerminal ?? { report in printError("backup of \(database): \(report.line)") }
            let outcome = BackupRunner.runForOutcome(job, key: context.key, trigger: .command, progress: progress)
            if onTerminal != nil { printError("") }
            // The outcome goes to the audit stream too, as the daemon's scheduled runs do.
            do { try ProxyServer.auditBackup(outcome, settings: context.config.general.audit) } catch {
                printError("warning: the backup audit event was not written: \(error)")
            }
            guard let manifest = outcome.manifest else {
                printError("backup of \(database) failed: \(outcome.error ?? "")")
                throw ExitCode(1)
            }
            print("backup \(manifest.id) of \(database): good, \(ProgressReport.size(manifest.plaintextBytes)) dumped, "
                  + "\(ProgressReport.size(manifest.storedBytes)) stored, \(max(1, outcome.seconds))s")
        }
    }

    public struct ListBackups: ParsableCommand {
        public init() {}
        public static let configuration = CommandConfiguration(commandName: "list", abstract: "List backups, oldest first.")
        @OptionGroup var options: BackupConfigOption

        public func run() throws {
            let context = try BackupContext(configPath: options.config)
            let listing: (manifests: [BackupManifest], problems: [String])
            do { listing = try context.store.manifests() } catch {
                printError(error.description)
                throw ExitCode(1)
            }
            let stored: Set<String>
            do { stored = try context.store.storedIDs() } catch {
                printError(error.description)
                throw ExitCode(1)
            }
            // A manifest that is not authentic under the current key says nothing reliable (made
            // before a key rotation, or altered): listed, but as what it is.
            let rows = [["id", "database", "start", "size", "status"]] + listing.manifests.map {
                [$0.id, $0.database, formatTime($0.startedAt), ProgressReport.size($0.storedBytes),
                 !$0.isAuthentic(keys: [context.key]) ? "not-authentic"
                    : $0.status == .good && !stored.contains($0.id) ? "good-but-file-missing" : $0.status.rawValue]
            }
            let widths = (0..<5).map { column in rows.map { $0[column].count }.max() ?? 0 }
            for row in rows {
                print(row.enumerated().map { $0.element.padding(to: widths[$0.offset]) }.joined(separator: "  ")
                      .trimmingTrailingSpaces())
            }
            for problem in listing.problems { printError("warning: \(problem)") }
        }
    }

    public struct VerifyBackup: ParsableCommand {
        public init() {}
        public static let configuration = CommandConfiguration(
            commandName: "verify",
            abstract: "Decrypt, decompress and list a backup with pg_restore --list, writing nothing; exit 1 if damaged.")
        @OptionGroup var options: BackupConfigOption
        @Argument(help: "The backup id.") var id: String
        @Option(name: .customLong("old-key"), help: "A retired secret_key_file (repeatable), for backups made before a key rotation.")
        var oldKeys: [String] = []

        public func run() throws {
            let context = try BackupContext(configPath: options.config)
            let keys = try context.keys(oldKeyFiles: oldKeys)
            let progress = terminalProgress("verify \(id)")
            do {
                let result = try BackupReader.verify(store: context.store, id: id, keys: keys,
                                                     pgBinDir: context.settings.pgBinDir, progress: progress)
                if progress != nil { printError("") }
                print("backup \(id): good (\(result.tocEntries) lines of table of contents, "
                      + "\(ProgressReport.size(result.plaintextBytes)) of dump, SHA-256 matches the manifest)")
            } catch {
                if progress != nil { printError("") }
                printError("backup \(id) failed verification: \(error.description)")
                throw ExitCode(1)
            }
        }
    }

    public struct RestoreBackup: ParsableCommand {
        public init() {}
        public static let configuration = CommandConfiguration(
            commandName: "restore",
            abstract: "Restore a backup into an existing, empty database with pg_restore (custom format: in one transaction; directory format: -j after every file was authenticated).")
        @OptionGroup var options: BackupConfigOption
        @Argument(help: "The backup id.") var id: String
        @Option(help: "libpq connection string of the target database (create it first).") var target: String
        @Option(name: .customLong("old-key"), help: "A retired secret_key_file (repeatable).")
        var oldKeys: [String] = []
        @Option(help: "Parallel pg_restore jobs for a directory-format backup (default: as many as pg_dump had).") var jobs: Int?

        public func run() throws {
            let context = try BackupContext(configPath: options.config)
            let keys = try context.keys(oldKeyFiles: oldKeys)
            if let jobs, !(1...64).contains(jobs) {
                printError("--jobs must be between 1 and 64")
                throw ExitCode(2)
            }
            let progress = terminalProgress("restore \(id)")
            do {
                let manifest = try BackupReader.restore(store: context.store, id: id, keys: keys, target: target,
                                                        pgBinDir: context.settings.pgBinDir, jobs: jobs, progress: progress)
                if progress != nil { printError("") }
                print("restored backup \(id) of \(manifest.database)")
            } catch {
                if progress != nil { printError("") }
                printError("restore of \(id) failed: \(error.description)")
                throw ExitCode(1)
            }
        }
    }

    public struct PruneBackups: ParsableCommand {
        public init() {}
        public static let configuration = CommandConfiguration(
            commandName: "prune",
            abstract: "Delete backups beyond keep_last / keep_within; the newest good backup of each database always stays.")
        @OptionGroup var options: BackupConfigOption

        public func run() throws {
            let context = try BackupContext(configPath: options.config)
            let within = context.settings.keepWithin.map { $0.components.seconds }
            let policy = RetentionPolicy(keepLast: context.settings.keepLast, keepWithinSeconds: within)
            do {
                let deleted = try BackupPruner.prune(store: context.store, policy: policy, now: Int64(time(nil)), keys: [context.key])
                for id in deleted { print("deleted \(id)") }
                print("\(deleted.count) backup record(s) deleted")
            } catch {
                printError("prune failed: \(error.description)")
                throw ExitCode(1)
            }
        }
    }
}

extension String {
    func padding(to width: Int) -> String {
        count >= width ? self : self + String(repeating: " ", count: width - count)
    }

    func trimmingTrailingSpaces() -> String {
        var text = Substring(self)
        while text.last == " " { text.removeLast() }
        return String(text)
    }
}
