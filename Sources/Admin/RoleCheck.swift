import Config

/// How the upstream role of a read-only identity is checked on one database entry (start-up
/// check and `portcullis check-role`).
public enum RoleCheckRoute: Equatable, Sendable {
    /// Connected as the role itself, with its configured password (nil: the server lets it in
    /// without one — trust, peer — or libpq finds one in a .pgpass file).
    case asRole(password: Secret?)
    /// Connected as the auth user (`auth_user`, else `service_user`), asking about the role by
    /// name: a `password=auth_query` identity without `server_password` has no password the
    /// proxy could log in with outside a client's own login (its sessions pass the client's
    /// proof through).
    case throughAuthUser(AuthQuerySource)
}

/// One check to run: the role, on the entry, and how.
public struct RoleCheck: Sendable {
    public var identity: String
    public var role: String
    public var target: DatabaseTarget
    public var route: RoleCheckRoute

    /// The role a session of `identity` logs in as on `target`, and how to check it. Pure.
    public static func plan(identity: IdentityConfig, target: DatabaseTarget, config: PortcullisConfig) -> RoleCheck {
        let role = identity.serverUser ?? target.user ?? identity.name
        let password = identity.serverPassword ?? target.password
        if password == nil, identity.passwordFromAuthQuery, let source = config.authQuerySource(for: target) {
            return RoleCheck(identity: identity.name, role: role, target: target, route: .throughAuthUser(source))
        }
        return RoleCheck(identity: identity.name, role: role, target: target, route: .asRole(password: password))
    }

    /// How it is checked, for messages: empty, or ` (through auth_user "…")`.
    public var via: String {
        switch route {
        case .asRole: ""
        case .throughAuthUser(let source): " (checked through auth_user \"\(source.user)\")"
        }
    }

    /// Blocking (libpq): call it off the event loops.
    public func findings() throws(AdminError) -> [RoleFinding] {
        switch route {
        case .asRole(let password):
            return try RoleAudit.findings(target: target, user: role, password: password?.reveal())
        case .throughAuthUser(let source):
            return try RoleAudit.findings(target: target, role: role, through: source)
        }
    }
}

extension RoleAudit {
    /// The role check for `role`, run by another role: every `current_user` of ``query`` names
    /// the role as a bound parameter instead (has_*_privilege and pg_has_role take a role name
    /// and need no privilege of the caller, and the catalogs read are readable by everyone:
    /// PostgreSQL docs 9.26). Runs in the entry's own database, where its tables are.
    static let queryForNamedRole = query.replacingOccurrences(of: "current_user", with: "$1::name")

    public static func findings(target: DatabaseTarget, role: String, through source: AuthQuerySource) throws(AdminError) -> [RoleFinding] {
        let connection = try ServiceConnection(conninfo: Conninfo.make(target: target, user: source.user, password: source.password?.reveal()),
                                               purpose: "to database \"\(target.name)\" as auth_user \"\(source.user)\"")
        var findings: [RoleFinding] = []
        for row in try connection.rows(queryForNamedRole, parameters: [role], columns: 2, what: "role check of \"\(role)\"") {
            findings.append(RoleFinding(kind: row[0] ?? "", detail: row[1] ?? ""))
        }
        return findings
    }
}
