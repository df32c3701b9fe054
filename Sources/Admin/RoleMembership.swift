import Config

/// Role membership as pg_hba.conf's `+group` and `samerole` and pg_ident.conf's `+group`
/// see it: PostgreSQL's is_member_of_role_nosuper — direct or indirect membership through
/// pg_auth_members, every role a member of itself, superuser status not counting
/// (src/backend/utils/adt/acl.c).
public struct RoleMembership: Sendable, Equatable {
    /// role name → the names of every role that is a member of it (directly or not).
    public let membersByRole: [String: Set<String>]

    public init(membersByRole: [String: Set<String>]) {
        self.membersByRole = membersByRole
    }

    public static let empty = RoleMembership(membersByRole: [:])

    /// Whether `user` is `role` or a member of it. Unknown names are members of nothing.
    public func isMember(_ user: String, of role: String) -> Bool {
        if user == role { return true }
        return membersByRole[role]?.contains(user) ?? false
    }

    /// Every (member, role) pair, transitively, from the upstream catalog.
    static let query = """
        WITH RECURSIVE closure(member, roleid) AS (
            SELECT member, roleid FROM pg_catalog.pg_auth_members
            UNION
            SELECT c.member, m.roleid FROM closure c JOIN pg_catalog.pg_auth_members m ON m.member = c.roleid
        )
        SELECT mr.rolname, rr.rolname
        FROM closure c
        JOIN pg_catalog.pg_roles mr ON mr.oid = c.member
        JOIN pg_catalog.pg_roles rr ON rr.oid = c.roleid
        """

    /// Reads the membership through a service connection (libpq, the entry's TLS settings).
    /// Blocking: call it off the event loops.
    public static func load(target: DatabaseTarget, user: String, password: String?) throws(AdminError) -> RoleMembership {
        let connection = try ServiceConnection(conninfo: Conninfo.make(target: target, user: user, password: password),
                                               purpose: "to database \"\(target.name)\" as \"\(user)\" to read role membership")
        var members: [String: Set<String>] = [:]
        for row in try connection.rows(query, columns: 2, what: "role membership query") {
            guard let member = row[0], let role = row[1] else { continue }
            members[role, default: []].insert(member)
        }
        return RoleMembership(membersByRole: members)
    }
}
