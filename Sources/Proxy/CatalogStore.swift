import Glibc
import Config
import Admin
import Policy
import Logging
import EventLoop

/// The upstream catalogs the read-only gate consults ("writes hide behind names"): per
/// [databases] entry, the relations whose reading runs code with effects (views calling
/// unsafe functions, RLS policies, foreign tables — ``CatalogSnapshot``). Written by the
/// refresher thread, read by every loop; a lock guards the dictionary, snapshots are values.
public final class CatalogStore: @unchecked Sendable {
    private var lock = pthread_mutex_t()
    private var snapshots: [String: CatalogSnapshot] = [:]
    private var refreshHandler: (@Sendable () -> Void)?
    /// Databases reached through the wildcard entry `*`, whose names are learnt from sessions.
    private var wildcardDatabases: Set<String> = []

    public init() { pthread_mutex_init(&lock, nil) }

    /// Who refreshes the snapshots when a session reports a catalog change.
    func setRefreshHandler(_ handler: @escaping @Sendable () -> Void) {
        pthread_mutex_lock(&lock)
        refreshHandler = handler
        pthread_mutex_unlock(&lock)
    }

    /// The snapshot key of a session: the entry's name, or `*/dbname` under the wildcard entry.
    static func key(entry: String, database: String) -> String {
        entry == "*" ? "*/\(database)" : entry
    }

    /// A session reached `database` through the wildcard entry: from now on its catalog is
    /// read too (at once the first time).
    func noteWildcardDatabase(_ database: String) {
        pthread_mutex_lock(&lock)
        let isNew = wildcardDatabases.insert(database).inserted
        let handler = refreshHandler
        pthread_mutex_unlock(&lock)
        if isNew { handler?() }
    }

    var wildcardDatabaseNames: [String] {
        pthread_mutex_lock(&lock)
        defer { pthread_mutex_unlock(&lock) }
        return wildcardDatabases.sorted()
    }

    /// A read-write session finished a transaction that ran DDL through the proxy.
    func catalogChanged() {
        pthread_mutex_lock(&lock)
        let handler = refreshHandler
        pthread_mutex_unlock(&lock)
        handler?()
    }

    /// The snapshot for a database entry; empty (names unchecked, the text-level policy and
    /// PostgreSQL's read-only mode still apply) until the first successful load.
    public func snapshot(for entry: String) -> CatalogSnapshot {
        pthread_mutex_lock(&lock)
        defer { pthread_mutex_unlock(&lock) }
        return snapshots[entry] ?? .empty
    }

    func store(_ snapshot: CatalogSnapshot, for entry: String) {
        pthread_mutex_lock(&lock)
        snapshots[entry] = snapshot
        pthread_mutex_unlock(&lock)
    }
}

/// CommandComplete tags (protocol 55.7) of statements that can change what a catalog snapshot
/// records: views, rules, policies, functions, foreign tables, ownership and privileges.
enum CatalogChangeTag {
    static let prefixes: [[UInt8]] = ["CREATE", "ALTER", "DROP", "COMMENT", "GRANT", "REVOKE",
                                      "SECURITY LABEL", "IMPORT FOREIGN SCHEMA"].map { Array($0.utf8) }

    /// `payload`: the CommandComplete payload (the tag, NUL-terminated).
    static func changesCatalog(_ payload: some Collection<UInt8>) -> Bool {
        prefixes.contains { payload.starts(with: $0) }
    }
}

/// Reloads every [databases] entry's catalog snapshot at start-up, at each reload and every
/// `catalog_refresh_interval`, on its own thread (libpq blocks).
final class CatalogRefresher: @unchecked Sendable {
    private var lock = pthread_mutex_t()
    private var wake = pthread_cond_t()
    private var refreshRequested = false
    private let store: CatalogStore
    private let currentConfig: @Sendable () -> PortcullisConfig
    private let logger: Logger

    init(store: CatalogStore, logger: Logger, currentConfig: @escaping @Sendable () -> PortcullisConfig) {
        self.store = store
        self.logger = logger
        self.currentConfig = currentConfig
        pthread_mutex_init(&lock, nil)
        pthread_cond_init(&wake, nil)
    }

    func start() {
        let thread = LoopThread.start(name: "portcullis-catalog") { [self] in
            while true {
                refreshAll()
                waitForNextRound()
            }
        }
        LoopThread.detach(thread)
    }

    /// After a reload: refresh now rather than at the next interval.
    func refreshSoon() {
        pthread_mutex_lock(&lock)
        refreshRequested = true
        pthread_cond_signal(&wake)
        pthread_mutex_unlock(&lock)
    }

    private func waitForNextRound() {
        let interval = currentConfig().general.catalogRefreshInterval
        var deadline = timespec()
        clock_gettime(CLOCK_REALTIME, &deadline)
        let (seconds, attoseconds) = interval.components
        deadline.tv_sec += Int(seconds)
        deadline.tv_nsec += Int(attoseconds / 1_000_000_000)
        if deadline.tv_nsec >= 1_000_000_000 { deadline.tv_sec += 1; deadline.tv_nsec -= 1_000_000_000 }
        pthread_mutex_lock(&lock)
        while !refreshRequested {
            if pthread_cond_timedwait(&wake, &lock, &deadline) == ETIMEDOUT { break }
        }
        refreshRequested = false
        pthread_mutex_unlock(&lock)
    }

    private func refreshAll() {
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
        for (key, target) in targets {
            guard let (user, password) = Self.credentials(for: target, in: config) else {
                logger.warning("no credentials to read the catalog of database \"\(key)\" (set service_user): views and policies there are not checked for read-only identities")
                continue
            }
            do {
                let snapshot = try CatalogSnapshotLoader.load(conninfo: Conninfo.make(target: target, user: user, password: password),
                                                              readableForeignServers: target.readableForeignServers,
                                                              trustedExtensions: target.trustedExtensions)
                store.store(snapshot, for: key)
                logger.debug("catalog snapshot loaded", metadata: ["database": "\(key)",
                                                                   "restricted_relations": "\(snapshot.restrictedRelations.count)"])
            } catch {
                // The previous snapshot (if any) stays in force.
                logger.error("could not refresh the catalog snapshot of database \"\(key)\": \(error)")
            }
        }
    }

    /// service_user, else the upstream role of the first read-only identity that has a
    /// password, else the entry's own user.
    static func credentials(for target: DatabaseTarget, in config: PortcullisConfig) -> (String, String?)? {
        if let user = config.general.serviceUser {
            return (user, config.general.servicePassword?.reveal())
        }
        let readOnly = config.identities.values.sorted { $0.name < $1.name }.first {
            $0.mode == .readOnly && ($0.serverPassword ?? target.password) != nil
        }
        if let identity = readOnly {
            return (identity.serverUser ?? target.user ?? identity.name, (identity.serverPassword ?? target.password)?.reveal())
        }
        if let user = target.user { return (user, target.password?.reveal()) }
        return nil
    }
}
