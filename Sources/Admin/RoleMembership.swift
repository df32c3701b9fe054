import CLibPQ
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
        let conninfo = Conninfo.make(target: target, user: user, password: password)
        guard let connection = PQconnectdb(conninfo) else { throw AdminError(description: "out of memory") }
        defer { PQfinish(connection) }
        guard PQstatus(connection) == CONNECTION_OK else {
            throw AdminError(description: "could not connect to database \"\(target.name)\" as \"\(user)\": \(String(cString: PQerrorMessage(connection)).trimmingTrailingNewlines)")
        }
        guard let result = PQexec(connection, query) else { throw AdminError(description: "query failed") }
        defer { PQclear(result) }
        guard PQresultStatus(result) == PGRES_TUPLES_OK else {
            throw AdminError(description: "role membership query failed: \(String(cString: PQresultErrorMessage(result)).trimmingTrailingNewlines)")
        }
        var members: [String: Set<String>] = [:]
        for row in 0..<PQntuples(result) {
            let member = String(cString: PQgetvalue(result, row, 0))
            let role = String(cString: PQgetvalue(result, row, 1))
            members[role, default: []].insert(member)
        }
        return RoleMembership(membersByRole: members)
    }
}
