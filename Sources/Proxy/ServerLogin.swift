import Config

/// What a client's login becomes upstream under one configuration: the `[databases]` target
/// (with the identity's own client certificate, `server_sslcert`), the server user and its
/// password. Decided in one place, at authentication (``ClientStartupMachine``), and again when
/// a reload lands between a login and its server connection, or between two transactions in
/// transaction pooling (``PoolManager/currentTarget(of:database:user:)``).
struct ServerLogin {
    var target: DatabaseTarget
    var serverUser: String
    var serverPassword: Secret?
    /// The identity's mode (read-only without an identity, as at authentication).
    var mode: IdentityMode

    /// nil: no entry serves `database` (PostgreSQL's 3D000). `passThrough`: the SCRAM keys of
    /// the client's own proof, used when the identity's verifier came from auth_query and no
    /// password is configured for it (the verifier was the upstream role's own).
    static func resolve(_ config: PortcullisConfig, database: String, user: String, passThrough: Secret?) -> ServerLogin? {
        guard let target = config.database(named: database) else { return nil }
        let identity = config.identities[user]
        let serverUser = identity?.serverUser ?? target.user ?? user
        var serverPassword = identity?.serverPassword ?? target.password
        if serverPassword == nil, identity?.passwordFromAuthQuery == true, serverUser == user {
            serverPassword = passThrough
        }
        return ServerLogin(target: identity.map { target.connecting(as: $0) } ?? target, serverUser: serverUser,
                           serverPassword: serverPassword, mode: identity?.mode ?? .readOnly)
    }

    /// Whether a session that logged in as `self` can go on as `now`: the same entry, server
    /// user, database, password, client certificate and identity mode — only the way to the
    /// server (host, port, TLS settings, connect_timeout) may have changed. Its credentials
    /// never go to a server the configuration no longer gives them to, and an identity a
    /// reload made read-only gets no new server connection as read-write.
    func isSameLogin(as now: ServerLogin) -> Bool {
        mode == now.mode && target.entryName == now.target.entryName && serverUser == now.serverUser
            && serverPassword == now.serverPassword
            && target.dbname == now.target.dbname && target.sslCert == now.target.sslCert && target.sslKey == now.target.sslKey
            && target.certificateIdentity == now.target.certificateIdentity
    }
}
