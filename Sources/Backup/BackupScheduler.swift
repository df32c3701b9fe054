import CPortcullisShims
import Config
import Glibc

/// Runs the `schedule.<database>` backups of [backup] inside the daemon, on its own thread
/// (`portcullis-backup`): pg_dump, compression, encryption and storage I/O all block, so none
/// of it may run on an event loop. One backup at a time; each fire time is computed in UTC
/// with `CronSchedule`. A reload hands in the new configuration (`update`), which takes
/// effect at once (the wait is recomputed). Fires that fall while a backup is running are
/// not queued up: each database runs at most once when the thread gets back to it, as cron
/// does not start a job twice in one minute either.
public final class BackupScheduler: @unchecked Sendable {
    public typealias Log = @Sendable (_ isError: Bool, _ message: String) -> Void
    private var mutex = pthread_mutex_t()
    private var condition = pthread_cond_t()
    private var config: PortcullisConfig?
    private var configPath: String
    private var changed = false
    private var stopping = false
    private var started = false
    private var running: String?
    private let log: Log
    private let outcome: @Sendable (BackupOutcome) -> Void
    /// Wall clock, Unix seconds (injectable for tests).
    private let clock: @Sendable () -> Int64

    public init(configPath: String, log: @escaping Log, outcome: @escaping @Sendable (BackupOutcome) -> Void,
                clock: @escaping @Sendable () -> Int64 = { Int64(time(nil)) }) {
        self.configPath = configPath
        self.log = log
        self.outcome = outcome
        self.clock = clock
        pthread_mutex_init(&mutex, nil)
        pthread_cond_init(&condition, nil)
    }

    /// The configuration in force (at start and after every applied reload). Starts the
    /// thread the first time a schedule exists.
    public func update(_ config: PortcullisConfig) {
        pthread_mutex_lock(&mutex)
        self.config = config
        changed = true
        let start = !started && !(config.backup?.schedules.isEmpty ?? true)
        if start { started = true }
        pthread_cond_signal(&condition)
        pthread_mutex_unlock(&mutex)
        if start { startThread() }
    }

    /// Stops waiting; a backup in progress is not waited for (the process is exiting; its
    /// leftovers are cleaned by the next run), but is named in the log.
    public func stop() {
        pthread_mutex_lock(&mutex)
        stopping = true
        let current = running
        pthread_cond_signal(&condition)
        pthread_mutex_unlock(&mutex)
        if let current { log(true, "backup of \(current) was still running at shutdown; it is abandoned and cleaned up by the next run") }
    }

    private func startThread() {
        let box = Unmanaged.passRetained(self)
        var handle = pthread_t()
        let made = pthread_create(&handle, nil, { raw in
            guard let raw else { return nil }
            let scheduler = Unmanaged<BackupScheduler>.fromOpaque(raw).takeRetainedValue()
            _ = pc_set_thread_name("portcullis-backup")
            scheduler.run()
            return nil
        }, box.toOpaque())
        if made == 0 { pthread_detach(handle) } else {
            box.release()
            log(true, "could not start the backup scheduler thread: \(String(cString: strerror(made)))")
        }
    }

    private func run() {
        var lastCheck = clock()
        pthread_mutex_lock(&mutex)
        while !stopping {
            if changed {
                changed = false
                // A schedule added by a reload fires from now on, not for times already past.
                lastCheck = clock()
                let schedules = config?.backup?.schedules ?? [:]
                if !schedules.isEmpty {
                    let options = config?.backup?.databaseOptions ?? [:]
                    log(false, "backup schedules: " + schedules.sorted { $0.key < $1.key }
                        .map { "\($0.key) \"\($0.value.description)\"" + (options[$0.key].map { " " + $0.description } ?? "") }
                        .joined(separator: ", ") + " (UTC)")
                }
            }
            let schedules = config?.backup?.schedules ?? [:]
            let now = clock()
            let due = schedules.keys.sorted().filter { schedules[$0]?.next(after: lastCheck).map { $0 <= now } ?? false }
            if !due.isEmpty, let config {
                lastCheck = now
                for database in due where !stopping && !changed {
                    running = database
                    pthread_mutex_unlock(&mutex)
                    runOne(database: database, config: config)
                    pthread_mutex_lock(&mutex)
                    running = nil
                }
                continue
            }
            let next = schedules.values.compactMap { $0.next(after: lastCheck) }.min()
            if let next {
                var deadline = timespec(tv_sec: time_t(next), tv_nsec: 0)
                _ = pthread_cond_timedwait(&condition, &mutex, &deadline)
            } else {
                pthread_cond_wait(&condition, &mutex)
            }
        }
        pthread_mutex_unlock(&mutex)
    }

    private func runOne(database: String, config: PortcullisConfig) {
        let setup: BackupSetup
        let job: BackupJob
        do {
            setup = try BackupSetup(config: config, configPath: configPath)
            job = try setup.job(database: database)
        } catch {
            let result = BackupOutcome(database: database, trigger: .schedule, storage: config.backup?.directory ?? "",
                                       manifest: nil, error: error.description, seconds: 0)
            log(true, result.line)
            outcome(result)
            return
        }
        log(false, "backup of \(database) started (schedule) to \(setup.store.describe)")
        let log = self.log
        let result = BackupRunner.runForOutcome(job, key: setup.key, trigger: .schedule) { report in
            log(false, "backup of \(database): \(report.line)")
        }
        log(!result.succeeded, result.line)
        outcome(result)
        if result.succeeded, let options = config.backup?.databaseOptions[database], options.hasRetention {
            pruneAfterSchedule(database: database, options: options, setup: setup)
        }
    }

    /// The retention a schedule carries (`keep_last=`, `keep_within=`), applied to that
    /// database only, after its scheduled backup succeeded — never after a failure, so a
    /// failing database keeps every backup it has. `RetentionPolicy` never deletes the newest
    /// good backup (here: the one just taken).
    private func pruneAfterSchedule(database: String, options: BackupDatabaseOptions, setup: BackupSetup) {
        let policy = RetentionPolicy(keepLast: options.keepLast, keepWithinSeconds: options.keepWithin.map { $0.components.seconds })
        do {
            let deleted = try BackupPruner.prune(store: setup.store, policy: policy, now: clock(), keys: [setup.key], database: database)
            log(false, "backup prune of \(database) (schedule): \(deleted.count) backup record(s) deleted"
                + (deleted.isEmpty ? "" : ": " + deleted.joined(separator: ", ")))
        } catch {
            log(true, "backup prune of \(database) failed (schedule): \(error.description)")
        }
    }
}
