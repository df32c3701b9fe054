/// A fully validated Portcullis configuration, as produced by `ConfigLoader`.
public struct PortcullisConfig: Sendable {
    /// The [portcullis] section.
    public var general: GeneralSettings
    /// The [tls] section: TLS termination towards clients.
    public var tls: ClientTLSSettings
    /// The [databases] section, keyed by the database name a client asks for (`*` = fallback).
    public var databases: [String: DatabaseTarget]
    /// The [identities] section, keyed by client user name.
    public var identities: [String: IdentityConfig]
    /// The file the configuration was read from (the `fileName` given to `parse`).
    public var sourcePath: String
    /// The [backup] section; nil = not configured.
    public var backup: BackupSettings?

    public init(
        general: GeneralSettings = GeneralSettings(),
        tls: ClientTLSSettings = ClientTLSSettings(),
        databases: [String: DatabaseTarget] = [:],
        identities: [String: IdentityConfig] = [:],
        sourcePath: String = ""
    ) {
        self.general = general
        self.tls = tls
        self.databases = databases
        self.identities = identities
        self.sourcePath = sourcePath
    }

    /// The upstream target for a client's startup-packet `database`: the entry of that exact
    /// name, else the `*` fallback entry. The returned target is named `name` and always has
    /// `dbname` set (the entry's own `dbname`, else `name`), so callers never need to resolve
    /// "the client's database" themselves.
    public func database(named name: String) -> DatabaseTarget? {
        guard var target = databases[name] ?? databases["*"] else { return nil }
        target.fromWildcard = databases[name] == nil
        target.name = name
        if target.dbname == nil { target.dbname = name }
        return target
    }
}

/// The [portcullis] section.
public struct GeneralSettings: Sendable {
    /// Literal IPv4/IPv6 addresses to listen on; `localhost` and `*` are already expanded.
    /// Empty = no TCP listener.
    public var listenAddresses: [String]
    public var listenPort: UInt16
    /// SO_REUSEPORT on the TCP listening sockets (PgBouncer's `so_reuseport`): other processes
    /// of the same user may then bind the same port and the kernel splits new connections
    /// between them. Off by default, so a second instance fails to start, as PostgreSQL does.
    public var soReusePort = false
    /// Absolute directories; each gets a socket file named `.s.PGSQL.<listenPort>`.
    public var unixSocketDirectories: [String]
    /// Permission bits (`mode_t`) for the socket files.
    public var unixSocketPermissions: UInt32
    /// Group owning the socket files; nil = the process's group.
    public var unixSocketGroup: String?
    /// Number of event loops; 0 = one per CPU.
    public var workers: Int
    public var maxClientConnections: Int
    public var loginTimeout: Duration
    /// nil = clients may idle forever.
    public var clientIdleTimeout: Duration?
    public var shutdownDrainTimeout: Duration
    /// Largest protocol message (bytes) accepted from either side.
    public var maxMessageSize: Int
    /// Bytes buffered per direction before the proxy stops reading the other side.
    public var outboundBufferLimit: Int
    /// Authentication for Unix-domain socket clients.
    public var localAuthMethod: AuthMethod
    /// Authentication for TCP clients.
    public var hostAuthMethod: AuthMethod
    public var serverReset: ServerResetPolicy
    /// `pool_mode`: the default for [databases] entries that do not set their own.
    public var poolMode: PoolMode = .session
    /// `transaction_pin`: what transaction mode does with state that cannot move between
    /// server connections (the default for entries that do not set their own).
    public var transactionPin: TransactionPinPolicy = .pin
    /// `max_prepared_statements`: named protocol-level prepared statements transaction mode
    /// keeps per client and prepares on whichever server it gets; 0 = every one pins.
    public var maxPreparedStatements: Int = 200
    public var pool: PoolSettings
    /// Key used to decrypt `enc:` secrets; nil = none configured.
    public var secretKeyFile: String?
    public var logLevel: LogLevelSetting
    /// pg_hba.conf-format rules for client authentication; when set, they replace
    /// `local_auth_method` and `host_auth_method`.
    public var hbaFile: String?
    /// pg_ident.conf-format user name maps for `map=` options.
    public var identFile: String?
    /// Where the running process writes its pid (and `<pid_file>.status`, the outcome of the
    /// last reload) for `portcullis reload` and service managers; nil = none.
    public var pidFile: String?
    /// Upstream role (and password) for the proxy's own catalog queries: `+group` and
    /// `samerole` membership in pg_hba.conf/pg_ident.conf.
    public var serviceUser: String?
    public var servicePassword: Secret?
    /// How often the catalog snapshots for read-only checks are re-read (also at reload).
    public var catalogRefreshInterval: Duration = .seconds(30)
    /// How old a catalog snapshot may grow (its refreshes failing) before it no longer judges
    /// statements: then the database's read-only statements are refused as before its first
    /// load. nil = ``effectiveCatalogMaxAge``'s default.
    public var catalogMaxAge: Duration?
    /// `catalogMaxAge`, else 3 × `catalogRefreshInterval` but at least 60 s: two full refreshes
    /// in a row may fail (a server restart, a failover) before read-only clients notice, and a
    /// short interval does not turn a one-minute outage into refusals.
    public var effectiveCatalogMaxAge: Duration {
        catalogMaxAge ?? max(catalogRefreshInterval * 3, .seconds(60))
    }
    /// Connections that have not finished authentication, all addresses together; 0 = a
    /// quarter of `maxClientConnections`, so the rest stays free for authenticated clients.
    public var maxStartupConnections: Int = 0
    /// Connections that have not finished authentication from one client address (TCP only);
    /// 0 = no per-address limit.
    public var maxStartupConnectionsPerAddress: Int = 50
    /// Logged-in sessions per identity (client user), all loops together, unless the identity
    /// sets its own `max_connections`; 0 = no limit. PostgreSQL's role CONNECTION LIMIT.
    public var maxIdentityConnections: Int = 0
    /// How long a new connection may stay silent before its first byte; nil = `loginTimeout`.
    public var startupFirstByteTimeout: Duration? = .seconds(5)
    /// Upper bound of the per-address delay of failed-login responses; nil = off.
    public var authFailureDelay: Duration?

    /// The limit on unauthenticated connections in force: explicit, else a quarter of
    /// `maxClientConnections` (at least 1).
    public var effectiveMaxStartupConnections: Int {
        maxStartupConnections > 0 ? maxStartupConnections : max(1, maxClientConnections / 4)
    }
    /// Largest Query or Parse text (bytes) a read-only identity may send; longer ones are
    /// refused without being parsed.
    public var readOnlyMaxStatementSize: Int = 1024 * 1024
    /// How long classifying one statement of a read-only identity may take before the
    /// statement is refused (57014).
    public var readOnlyClassifyTimeout: Duration = .seconds(5)
    /// Statement text all sessions keep, in all: read-only sessions' prepared statements (to
    /// judge each Bind again) and transaction pooling's (to prepare them on another server).
    public var maxKeptStatementMemory = 1 << 30
    /// The audit stream (docs/AUDIT.md).
    public var audit = AuditSettings()
    /// Verifiers read from the upstream for `password=auth_query` identities.
    public var authQuery = AuthQuerySettings()

    public init(
        listenAddresses: [String] = ["127.0.0.1", "::1"],
        listenPort: UInt16 = 6432,
        unixSocketDirectories: [String] = [],
        unixSocketPermissions: UInt32 = 0o777,
        unixSocketGroup: String? = nil,
        workers: Int = 0,
        maxClientConnections: Int = 1000,
        loginTimeout: Duration = .seconds(60),
        clientIdleTimeout: Duration? = nil,
        shutdownDrainTimeout: Duration = .seconds(30),
        maxMessageSize: Int = 64 * 1024 * 1024,
        outboundBufferLimit: Int = 256 * 1024,
        localAuthMethod: AuthMethod = .scramSHA256,
        hostAuthMethod: AuthMethod = .scramSHA256,
        serverReset: ServerResetPolicy = .close,
        pool: PoolSettings = PoolSettings(),
        secretKeyFile: String? = nil,
        logLevel: LogLevelSetting = .info
    ) {
        self.listenAddresses = listenAddresses
        self.listenPort = listenPort
        self.unixSocketDirectories = unixSocketDirectories
        self.unixSocketPermissions = unixSocketPermissions
        self.unixSocketGroup = unixSocketGroup
        self.workers = workers
        self.maxClientConnections = maxClientConnections
        self.loginTimeout = loginTimeout
        self.clientIdleTimeout = clientIdleTimeout
        self.shutdownDrainTimeout = shutdownDrainTimeout
        self.maxMessageSize = maxMessageSize
        self.outboundBufferLimit = outboundBufferLimit
        self.localAuthMethod = localAuthMethod
        self.hostAuthMethod = hostAuthMethod
        self.serverReset = serverReset
        self.pool = pool
        self.secretKeyFile = secretKeyFile
        self.logLevel = logLevel
    }

    /// The most sessions an identity may have at once: its own `max_connections` (`override`)
    /// if set, else `max_identity_connections`; nil = no limit (0 in either means none).
    public func identityConnectionLimit(override: Int?) -> Int? {
        let limit = override ?? maxIdentityConnections
        return limit > 0 ? limit : nil
    }
}

/// Client authentication method, named as in pg_hba.conf (PostgreSQL 21.1 The pg_hba.conf File).
public enum AuthMethod: String, Sendable, CaseIterable {
    case trust
    case reject
    case scramSHA256 = "scram-sha-256"
}

/// What happens to a server connection when its client leaves.
public enum ServerResetPolicy: String, Sendable, CaseIterable {
    /// The server connection is closed; it is never handed to another client.
    case close
    /// `DISCARD ALL` is run and the connection is reused.
    case discard
}

/// How long a client keeps a server connection (PgBouncer's pool_mode).
public enum PoolMode: String, Sendable, CaseIterable {
    /// For the whole client session (the default): every invisibility rule holds.
    case session
    /// For one transaction: released when the session is at rest outside a transaction
    /// block, unless state that cannot move with the client pins it (docs/ARCHITECTURE.md).
    case transaction
}

/// What transaction mode does with a statement that leaves state on its server connection
/// (temporary tables, LISTEN, session advisory locks, WITH HOLD cursors, PREPARE, LOAD,
/// SET ROLE/SESSION AUTHORIZATION, session-level SET).
public enum TransactionPinPolicy: String, Sendable, CaseIterable {
    /// The client keeps its server connection until the state is provably gone (or it leaves).
    case pin
    /// The statement is refused (0A000 feature_not_supported) and never reaches the server.
    case refuse
}

/// Server connection pool limits, per (database, server user).
public struct PoolSettings: Sendable {
    public var maxSize: Int
    public var minIdle: Int
    /// nil = idle server connections are kept indefinitely.
    public var idleTimeout: Duration?
    /// nil = no age limit.
    public var maxLifetime: Duration?
    /// How long a client waits for a free server connection before it gets an error.
    public var waitTimeout: Duration
    /// How long a pool keeps its spares after its last client left (then it is cold).
    public var spareLinger: Duration
    /// A spare no client took within this long is replaced (nil = kept up to maxLifetime).
    public var spareMaxAge: Duration?

    public init(
        maxSize: Int = 20,
        minIdle: Int = 1,
        idleTimeout: Duration? = .seconds(600),
        maxLifetime: Duration? = .seconds(3600),
        waitTimeout: Duration = .seconds(30),
        spareLinger: Duration = .seconds(1),
        spareMaxAge: Duration? = .seconds(10)
    ) {
        self.maxSize = maxSize
        self.minIdle = minIdle
        self.idleTimeout = idleTimeout
        self.maxLifetime = maxLifetime
        self.waitTimeout = waitTimeout
        self.spareLinger = spareLinger
        self.spareMaxAge = spareMaxAge
    }
}

public enum LogLevelSetting: String, Sendable, CaseIterable {
    case debug, info, notice, warning, error
}
