/// Password verifiers taken from the upstream instead of the configuration file, in the spirit
/// of PgBouncer's `auth_user`/`auth_query`/`auth_dbname` (PgBouncer docs, "Authentication
/// settings"): an identity written with `password=auth_query` has its verifier read from the
/// server's `pg_authid` (through `pg_shadow`, or a configured query or SECURITY DEFINER
/// function) by the auth user, cached per configuration generation (docs/CONFIG.md).
public struct AuthQuerySettings: Sendable, Equatable {
    /// PgBouncer's default, with every name schema-qualified: needs a superuser (pg_shadow is
    /// readable only by superusers). The lookup runs with `search_path=pg_catalog,pg_temp`
    /// whatever the database's or role's defaults (``AuthQuerySource``), so a database owner
    /// cannot put a `public.pg_shadow` view, or an operator, in the superuser's way.
    public static let defaultQuery = "SELECT usename, passwd FROM pg_catalog.pg_shadow WHERE usename OPERATOR(pg_catalog.=) $1"

    /// Role that runs the query; nil = `service_user`.
    public var user: String?
    /// Its password (plaintext or `enc:`); used only with `user`.
    public var password: Secret?
    /// Returns (name, verifier) for the user name in `$1`.
    public var query: String = AuthQuerySettings.defaultQuery
    /// A (possibly schema-qualified) function called as `SELECT * FROM fn($1)` instead of
    /// `query`, for setups where the auth user is not a superuser.
    public var function: String?
    /// Database the query runs in; nil = the database the client connects to.
    public var dbname: String?
    /// A cached verifier older than this is read again before it is used.
    public var refreshInterval: Duration = .seconds(60)
    /// Bound on one lookup (connect and query each).
    public var timeout: Duration = .seconds(5)

    public init() {}

    /// The SQL that is run, with the client's user name as `$1`.
    public var effectiveQuery: String {
        function.map { "SELECT * FROM \($0)($1)" } ?? query
    }
}

/// Who reads a verifier for a login to one database, and where.
public struct AuthQuerySource: Sendable, Equatable {
    public var user: String
    public var password: Secret?
    /// The database the lookup connects to.
    public var dbname: String
    public var query: String
    public var timeout: Duration
}

extension PortcullisConfig {
    /// The lookup for a login through `target` (as returned by ``database(named:)``): the
    /// entry's `auth_user`/`auth_password`/`auth_dbname`, else the global ones, else
    /// `service_user`/`service_password`; nil when no role is configured.
    public func authQuerySource(for target: DatabaseTarget) -> AuthQuerySource? {
        let settings = general.authQuery
        let credentials: (String, Secret?)
        if let user = target.authUser {
            credentials = (user, target.authPassword)
        } else if let user = settings.user {
            credentials = (user, settings.password)
        } else if let user = general.serviceUser {
            credentials = (user, general.servicePassword)
        } else {
            return nil
        }
        return AuthQuerySource(user: credentials.0, password: credentials.1,
                               dbname: target.authDbname ?? settings.dbname ?? target.dbname ?? target.name,
                               query: settings.effectiveQuery, timeout: settings.timeout)
    }
}

extension ClientPasswordVerifier {
    /// A verifier as stored in pg_authid.rolpassword (read by `auth_query`); nil when the text
    /// is neither a SCRAM-SHA-256 verifier nor an md5 hash.
    public static func stored(_ text: String) -> ClientPasswordVerifier? {
        try? parse(text)
    }
}

extension ConfigBuilder {
    static let authQueryKeys = ["auth_user", "auth_password", "auth_query", "auth_function", "auth_dbname",
                                "auth_query_refresh_interval", "auth_query_timeout"]

    /// The `auth_*` keys of [portcullis]; false for keys that are not ours.
    mutating func applyAuthQuery(_ entry: IniDocument.Entry) throws(SettingError) -> Bool {
        let value = entry.value
        switch entry.key {
        case "auth_user":
            config.general.authQuery.user = value.isEmpty ? nil : value
        case "auth_password":
            config.general.authQuery.password = value.isEmpty ? nil : Secret(value)
        case "auth_query":
            guard value.contains("$1") else { throw SettingError("must contain $1 (the user name)") }
            config.general.authQuery.query = value
        case "auth_function":
            config.general.authQuery.function = value.isEmpty ? nil : try Self.functionName(value)
        case "auth_dbname":
            config.general.authQuery.dbname = value.isEmpty ? nil : value
        case "auth_query_refresh_interval":
            let interval = try SettingValue.duration(value)
            guard interval > .zero else { throw SettingError("must be greater than zero") }
            config.general.authQuery.refreshInterval = interval
        case "auth_query_timeout":
            let timeout = try SettingValue.duration(value)
            guard timeout >= .seconds(1), timeout <= .seconds(300) else { throw SettingError("must be between 1s and 300s") }
            config.general.authQuery.timeout = timeout
        default:
            return false
        }
        return true
    }

    /// `name` or `schema.name`, unquoted identifiers only (they are put into SQL as written).
    static func functionName(_ value: String) throws(SettingError) -> String {
        let parts = value.split(separator: ".", omittingEmptySubsequences: false)
        let valid = parts.count <= 2 && parts.allSatisfy { part in
            guard let first = part.first, first.isASCII, first.isLetter || first == "_" else { return false }
            return part.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_" || $0 == "$") }
        }
        guard valid else { throw SettingError("must be schema.function (unquoted identifiers)") }
        // The lookup runs with search_path=pg_catalog,pg_temp: an unqualified name would not be
        // found, and must not be, since whoever controls the database's search_path could
        // otherwise supply it.
        guard parts.count == 2 else { throw SettingError("must be schema-qualified (schema.function): the lookup runs with search_path=pg_catalog,pg_temp") }
        return value
    }

    /// `password=auth_query` needs a role to run the lookup as, and `auth_function` replaces
    /// `auth_query`.
    mutating func checkAuthQueryRelationships() {
        let general = config.general
        if general.authQuery.function != nil, general.authQuery.query != AuthQuerySettings.defaultQuery {
            report(line: lineForProblem(with: "auth_function", in: "portcullis"),
                   "auth_query and auth_function must not both be set")
        }
        guard general.authQuery.user == nil, general.serviceUser == nil,
              config.databases.values.contains(where: { $0.authUser == nil }) else { return }
        for identity in config.identities.values.sorted(by: { $0.name < $1.name }) where identity.passwordFromAuthQuery {
            report(line: line(of: identity.name, in: "identities") ?? 0,
                   "identity \"\(identity.name)\": password=auth_query needs auth_user (or service_user) "
                       + "in [portcullis] or in every [databases] entry")
        }
    }
}
