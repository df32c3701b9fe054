import Glibc
import Config
import Admin
import Policy
import Logging
import EventLoop
import CPortcullisShims
import Synchronization

/// The upstream catalogs the read-only gate consults ("writes hide behind names"): per
/// [databases] entry, the relations whose reading runs code with effects (views calling
/// unsafe functions, RLS policies, foreign tables — ``CatalogSnapshot``). Written by the
/// refresher thread, read by every loop; a lock guards the dictionary, snapshots are values.
public final class CatalogStore: Sendable {
    private struct Entry {
        /// The last successful load's snapshot (nil: none yet).
        var snapshot: CatalogSnapshot?
        var freshness = CatalogFreshness()
        /// The last attempt failed with this error: the refresher tries again soon.
        var failure: String?
    }

    private struct State {
        var entries: [String: Entry] = [:]
        var refreshHandler: (@Sendable () -> Void)?
        /// Databases reached through the wildcard entry `*`, whose names are learnt from sessions.
        var wildcardDatabases: Set<String> = []
    }

    private let state = Mutex(State())

    public init() {}

    /// Who refreshes the snapshots when a session reports a catalog change.
    func setRefreshHandler(_ handler: @escaping @Sendable () -> Void) {
        state.withLock { $0.refreshHandler = handler }
    }

    /// The snapshot key of a session: the entry's name, or `*/dbname` under the wildcard entry.
    static func key(entry: String, database: String) -> String {
        entry == "*" ? "*/\(database)" : entry
    }

    /// A session reached `database` through the wildcard entry: from now on its catalog is
    /// read too (at once the first time).
    func noteWildcardDatabase(_ database: String) {
        let (isNew, handler) = state.withLock { ($0.wildcardDatabases.insert(database).inserted, $0.refreshHandler) }
        // Called outside the lock: the handler takes the refresher's own.
        if isNew { handler?() }
    }

    var wildcardDatabaseNames: [String] {
        state.withLock { $0.wildcardDatabases.sorted() }
    }

    /// A read-write session finished a transaction that ran DDL through the proxy.
    func catalogChanged() {
        let handler = state.withLock { $0.refreshHandler }
        handler?()
    }

    /// The snapshot for a database entry at `now` (the caller's clock). Until the first
    /// successful load, and once the snapshot in force was loaded longer than `maxAge`
    /// (`catalog_max_age`) ago (``CatalogFreshness``), an unloaded one that refuses every
    /// statement of a read-only identity (fail closed: the catalog could hold anything).
    /// Sessions wait a little for a pending load (``ClientSession/classify(_:server:catalogDeadline:)``).
    /// `event`: the snapshot went stale, first seen by this call (the caller logs it).
    func snapshot(for entry: String, at now: MonotonicInstant,
                  maxAge: Duration) -> (snapshot: CatalogSnapshot, event: CatalogFreshness.Event?) {
        state.withLock { state in
            guard let snapshot = state.entries[entry]?.snapshot else {
                return (.unloaded(state.entries[entry]?.failure.map { .failed($0) } ?? .pending), nil)
            }
            let (usable, event) = state.entries[entry, default: Entry()].freshness.checked(at: now, maxAge: maxAge)
            return (usable ? snapshot : .unloaded(.stale), event)
        }
    }

    /// A load of `entry` that started at `startedAt` succeeded; `event`: it ended a stale episode.
    @discardableResult
    func store(_ snapshot: CatalogSnapshot, for entry: String, loadStartedAt startedAt: MonotonicInstant,
               at now: MonotonicInstant, maxAge: Duration) -> CatalogFreshness.Event? {
        state.withLock {
            $0.entries[entry, default: Entry()].snapshot = snapshot
            $0.entries[entry, default: Entry()].failure = nil
            return $0.entries[entry, default: Entry()].freshness.loadSucceeded(startedAt: startedAt, at: now, maxAge: maxAge)
        }
    }

    /// Some entry's last load failed (never read, or its snapshot ages towards
    /// `catalog_max_age`): the refresher tries again soon.
    var hasFailures: Bool {
        state.withLock { $0.entries.values.contains { $0.failure != nil } }
    }

    func hasFailed(_ entry: String) -> Bool {
        state.withLock { $0.entries[entry]?.failure != nil }
    }

    func lastFailure(_ entry: String) -> String? {
        state.withLock { $0.entries[entry]?.failure }
    }

    /// Entries no longer configured are not retried.
    func forgetFailures(except entries: Set<String>) {
        state.withLock {
            for key in $0.entries.keys where !entries.contains(key) { $0.entries[key]?.failure = nil }
        }
    }

    /// A load failed at `now`: tried again soon; a previous snapshot stays in force until it
    /// is older than `maxAge`. `event`: the snapshot went stale, first seen by this call.
    func loadFailed(_ error: String, for entry: String, at now: MonotonicInstant,
                    maxAge: Duration) -> CatalogFreshness.Event? {
        state.withLock {
            $0.entries[entry, default: Entry()].failure = error
            return $0.entries[entry, default: Entry()].freshness.checked(at: now, maxAge: maxAge).event
        }
    }
}

/// Reloads every [databases] entry's catalog snapshot at start-up, at each reload and every
/// `catalog_refresh_interval`, on its own thread (libpq blocks).
final class CatalogRefresher: Sendable {
    /// An eventfd the refresher thread waits on (with the interval as timeout): written by
    /// `refreshSoon`, so a request made while a round runs is seen when it ends.
    private let wakeFD: Int32
    private let store: CatalogStore
    private let currentConfig: @Sendable () -> PortcullisConfig
    private let logger: Logger

    init(store: CatalogStore, logger: Logger, currentConfig: @escaping @Sendable () -> PortcullisConfig) throws(Errno) {
        self.store = store
        self.logger = logger
        self.currentConfig = currentConfig
        wakeFD = try syscallValue { eventfd(0, Int32(EFD_CLOEXEC)) }
    }

    deinit { closeDescriptor(wakeFD) }

    func start() {
        let thread = LoopThread.start(name: "portcullis-catalog") { [self] in
            var full = true
            while true {
                refreshAll(onlyFailed: !full)
                full = waitForNextRound()
            }
        }
        LoopThread.detach(thread)
    }

    static let retryAfterFailure: Duration = .seconds(2)

    /// After a reload: refresh now rather than at the next interval.
    func refreshSoon() {
        var one: UInt64 = 1
        _ = try? syscall { write(wakeFD, &one, 8) }
    }

    /// Until `catalog_refresh_interval` has passed or a refresh was requested (the request is
    /// consumed): true, a full round is due. A database whose catalog was never read refuses
    /// read-only statements, and so does one whose snapshot outlived `catalog_max_age`; so
    /// while some database's last load failed the wait ends after `retryAfterFailure` with
    /// false: only the failed ones are tried again (it may just have been created, or the
    /// server restarted), the others keep their interval.
    private func waitForNextRound() -> Bool {
        let interval = currentConfig().general.catalogRefreshInterval
        let retry = store.hasFailures && Self.retryAfterFailure < interval
        let deadline = MonotonicInstant.now() + (retry ? Self.retryAfterFailure : interval)
        while true {
            let remaining = deadline.duration(since: MonotonicInstant.now())
            guard remaining > .zero else { return !retry }
            let milliseconds = Int32(clamping: remaining.millisecondsClamped + 1)
            var entry = pollfd(fd: wakeFD, events: Int16(POLLIN), revents: 0)
            guard case .processed(let ready)? = try? syscall(blocking: true, { poll(&entry, 1, milliseconds) }) else { return true }
            if ready > 0 {
                var counter: UInt64 = 0
                _ = try? syscall { read(wakeFD, &counter, 8) }
                return true
            }
        }
    }

    /// `onlyFailed`: the databases whose catalog was never read, not the others.
    private func refreshAll(onlyFailed: Bool = false) {
        let config = currentConfig()
        var targets: [(key: String, target: DatabaseTarget)] = []
        for target in config.databases.values.sorted(by: { $0.name < $1.name }) {
            if target.name == "*" {
                for database in store.wildcardDatabaseNames {
                    var concrete = target
                    concrete.dbname = target.dbname ?? database
                    targets.append((CatalogStore.key(entry: "*", database: database), concrete))
                }
            } else {
                targets.append((target.name, target))
            }
        }
        if !onlyFailed { store.forgetFailures(except: Set(targets.map(\.key))) }
        let maxAge = config.general.effectiveCatalogMaxAge
        for (key, target) in targets where !onlyFailed || store.hasFailed(key) {
            guard let (user, password) = Self.credentials(for: target, in: config) else {
                // No read-only identity and no user for it: nothing here is gated, but fail
                // closed all the same.
                _ = store.loadFailed("no role to read the catalog with (set service_user)", for: key,
                                     at: MonotonicInstant.now(), maxAge: maxAge)
                continue
            }
            let startedAt = MonotonicInstant.now()
            do {
                let snapshot = try CatalogSnapshotLoader.load(conninfo: Conninfo.make(target: target, user: user, password: password),
                                                              readableForeignServers: target.readableForeignServers,
                                                              trustedExtensions: target.trustedExtensions)
                let event = store.store(snapshot, for: key, loadStartedAt: startedAt, at: MonotonicInstant.now(), maxAge: maxAge)
                logger.debug("catalog snapshot loaded", metadata: ["database": "\(key)",
                                                                   "restricted_relations": "\(snapshot.restrictedRelations.count)"])
                if let event { log(event, database: key, maxAge: maxAge) }
            } catch {
                // The previous snapshot (if any) stays in force until it is older than
                // catalog_max_age; without one, read-only statements there are refused.
                // Retries every 2 s log only a new error.
                if !onlyFailed || store.lastFailure(key) != "\(error)" {
                    logger.error("could not refresh the catalog snapshot of database \"\(key)\": \(error)")
                }
                if let event = store.loadFailed("\(error)", for: key, at: MonotonicInstant.now(), maxAge: maxAge) {
                    log(event, database: key, maxAge: maxAge)
                }
            }
        }
    }

    /// The two lines of a stale episode (``CatalogFreshness``): the first at error level (it
    /// refuses clients), logged by whoever sees it first (a session's statement or this
    /// thread), the second at notice level.
    static func logLine(_ event: CatalogFreshness.Event, database: String, maxAge: Duration) -> String {
        switch event {
        case .wentStale(let age):
            "the catalog snapshot of database \"\(database)\" is \(seconds(age)) old, older than"
                + " catalog_max_age (\(seconds(maxAge))), and could not be read again:"
                + " read-only statements there are refused until it is"
        case .recovered(let staleFor):
            "the catalog snapshot of database \"\(database)\" was read again after \(seconds(staleFor))"
                + " in which it was older than catalog_max_age: read-only statements there are judged again"
        }
    }

    /// "90 s", "3.2 s": tenths, so an age just past a short bound does not read as equal to it.
    private static func seconds(_ duration: Duration) -> String {
        let tenths = duration.millisecondsClamped / 100
        return tenths % 10 == 0 ? "\(tenths / 10) s" : "\(tenths / 10).\(tenths % 10) s"
    }

    private func log(_ event: CatalogFreshness.Event, database: String, maxAge: Duration) {
        let line = Self.logLine(event, database: database, maxAge: maxAge)
        if case .wentStale = event { logger.error("\(line)") } else { logger.notice("\(line)") }
    }

    /// service_user, else the upstream role of the first read-only identity that has a
    /// password, else of the first read-only identity (its upstream login may need none: a
    /// client certificate, trust), else the entry's own user.
    static func credentials(for target: DatabaseTarget, in config: PortcullisConfig) -> (String, String?)? {
        if let user = config.general.serviceUser {
            return (user, config.general.servicePassword?.reveal())
        }
        let readOnlyIdentities = config.identities.values.sorted { $0.name < $1.name }.filter { $0.mode == .readOnly }
        let readOnly = readOnlyIdentities.first { ($0.serverPassword ?? target.password) != nil } ?? readOnlyIdentities.first
        if let identity = readOnly {
            return (identity.serverUser ?? target.user ?? identity.name, (identity.serverPassword ?? target.password)?.reveal())
        }
        if let user = target.user { return (user, target.password?.reveal()) }
        return nil
    }
}
