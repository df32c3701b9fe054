/// One [databases] entry: where and how to reach the upstream PostgreSQL server. The fields
/// are libpq connection parameters (PostgreSQL 34.1.2 Parameter Key Words).
public struct DatabaseTarget: Sendable, Equatable {
    /// The database name clients ask for (`*` for the fallback entry).
    public var name: String
    /// The [databases] key this target came from: `name`, or `*` when
    /// ``PortcullisConfig/database(named:)`` filled it in from the fallback entry.
    public var entryName: String { fromWildcard ? "*" : name }
    /// Set when the target is the `*` entry resolved for a concrete database name.
    public var fromWildcard = false
    /// Set when `sslCert`/`sslKey` are an identity's own (`server_sslcert`): its TLS context
    /// is the one built for that (entry, identity) pair.
    public var certificateIdentity: String?
    /// This target as `identity` connects through it: with the identity's own client
    /// certificate when it has one (`server_sslcert`), else unchanged.
    public func connecting(as identity: IdentityConfig) -> DatabaseTarget {
        guard let certificate = identity.serverSSLCert else { return self }
        var target = self
        target.sslCert = certificate
        target.sslKey = identity.serverSSLKey
        target.certificateIdentity = identity.name
        return target
    }

    /// Which upstream TLS context this target connects with.
    public var tlsContextKey: String {
        certificateIdentity.map { "\(entryName)#\($0)" } ?? entryName
    }
    /// Host name, literal address, or absolute Unix-socket directory.
    public var host: String
    /// Literal address to connect to instead of resolving `host` (which is still used for
    /// certificate verification and SNI).
    public var hostaddr: String?
    public var port: UInt16
    /// nil = the database name the client asked for.
    public var dbname: String?
    /// nil = decided per identity (`server_user`, else the client's user name).
    public var user: String?
    public var password: Secret?
    public var sslMode: UpstreamSSLMode
    public var sslRootCert: String?
    public var sslCert: String?
    public var sslKey: String?
    public var sslSNI: Bool
    /// nil = no limit beyond the operating system's.
    public var connectTimeout: Duration?
    public var applicationName: String?
    /// Not libpq keywords: this entry's `pool_mode` and `transaction_pin` (nil = the
    /// [portcullis] defaults).
    public var poolMode: PoolMode?
    public var transactionPin: TransactionPinPolicy?
    /// Foreign servers whose foreign tables read-only identities may read (opt-in; by default
    /// reading any foreign table is refused, docs/READONLY.md).
    public var readableForeignServers: [String] = []
    /// Extensions whose member functions, operators and casts read-only checks treat like
    /// built-ins (opt-in; only extensions owned by a superuser count, docs/READONLY.md).
    public var trustedExtensions: [String] = []
    /// Overrides `audit_classes` for sessions of this entry (an identity's own wins).
    public var auditClasses: Set<String>?
    /// Not libpq keywords: who reads `password=auth_query` verifiers for logins through this
    /// entry, and in which database (override the [portcullis] `auth_*` settings).
    public var authUser: String?
    public var authPassword: Secret?
    public var authDbname: String?

    public init(
        name: String,
        host: String,
        hostaddr: String? = nil,
        port: UInt16 = 5432,
        dbname: String? = nil,
        user: String? = nil,
        password: Secret? = nil,
        sslMode: UpstreamSSLMode = .verifyFull,
        sslRootCert: String? = nil,
        sslCert: String? = nil,
        sslKey: String? = nil,
        sslSNI: Bool = true,
        connectTimeout: Duration? = nil,
        applicationName: String? = nil
    ) {
        self.name = name
        self.host = host
        self.hostaddr = hostaddr
        self.port = port
        self.dbname = dbname
        self.user = user
        self.password = password
        self.sslMode = sslMode
        self.sslRootCert = sslRootCert
        self.sslCert = sslCert
        self.sslKey = sslKey
        self.sslSNI = sslSNI
        self.connectTimeout = connectTimeout
        self.applicationName = applicationName
    }

    /// How a target reaches its server, apart from whom it logs in as (`dbname`, `user`, the
    /// client certificate): where a reload can move an entry while the sessions that logged in
    /// through it stay who they are.
    public struct Route: Hashable, Sendable {
        public var host: String
        public var hostaddr: String?
        public var port: UInt16
        public var sslMode: UpstreamSSLMode
        public var sslRootCert: String?
        public var sslSNI: Bool
    }

    /// Setting it moves the target to another server's route and keeps everything else.
    public var route: Route {
        get {
            Route(host: host, hostaddr: hostaddr, port: port, sslMode: sslMode, sslRootCert: sslRootCert, sslSNI: sslSNI)
        }
        set {
            host = newValue.host
            hostaddr = newValue.hostaddr
            port = newValue.port
            sslMode = newValue.sslMode
            sslRootCert = newValue.sslRootCert
            sslSNI = newValue.sslSNI
        }
    }

    /// True when `host` names a Unix-socket directory rather than a TCP host (libpq's rule:
    /// a host beginning with a slash).
    public var isUnixSocket: Bool {
        host.hasPrefix("/")
    }
}

/// libpq sslmode values that cannot silently fall back to plaintext
/// (PostgreSQL 34.19.1 Client Verification of Server Certificates). `allow` and `prefer` are
/// deliberately absent: the configuration loader rejects them.
public enum UpstreamSSLMode: String, Sendable, CaseIterable {
    case disable
    case require
    case verifyCA = "verify-ca"
    case verifyFull = "verify-full"
}
