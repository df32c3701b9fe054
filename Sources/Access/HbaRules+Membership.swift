/// Which loaded lines need role membership from the catalog (PostgreSQL reads it from
/// pg_auth_members through is_member_of_role_nosuper whenever such a line is checked).
///
/// Every spelling PostgreSQL 15–17 turns into a membership check (hba.c): in pg_hba.conf the
/// database keywords `samerole` and its old spelling `samegroup` (check_db), and a user
/// starting with an unquoted `+` (check_role), including tokens that come from an `@file`
/// (they keep their own quoting); in pg_ident.conf an unquoted `+group` in the PG-user column
/// (PostgreSQL 16+, check_ident_usermap). Quoted spellings (`"samerole"`, `"+admins"`) are
/// plain names and need nothing.
extension HbaRules {
    /// The database keywords check_db() answers with a membership check.
    static let membershipDatabaseKeywords = ["samerole", "samegroup"]

    /// True when some line can only be decided with role membership.
    public var usesRoleMembership: Bool {
        rules.contains { rule in
            rule.users.contains { $0.token.isMembershipCheck }
                || rule.databases.contains { pattern in
                    Self.membershipDatabaseKeywords.contains { pattern.token.isKeyword($0) }
                }
        }
    }
}

extension IdentMaps {
    /// True when some map line names a `+group` as its PostgreSQL user.
    public var usesRoleMembership: Bool {
        lines.contains { $0.databaseUser.token.isMembershipCheck }
    }
}
