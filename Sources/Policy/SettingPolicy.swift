/// Which run-time settings a read-only identity may change (SET, RESET, set_config).
///
/// Deny-list on purpose: applications set many harmless and custom (`app.x`) settings,
/// while only a few settings undo the read-only guarantee. Refused:
/// - `transaction_read_only`, `default_transaction_read_only` — turning read-only off
///   (docs 20.11.1 Statement Behavior);
/// - `role`, `session_authorization` — switching to an identity with more rights;
/// - `session_replication_role` — disables triggers and rules;
/// - `transaction_isolation`/`default_transaction_isolation` are allowed (they cannot write);
/// - `search_path` is allowed unless it names `pg_catalog` after another schema: that would
///   let a function in that schema shadow an allow-listed built-in of the same name
///   (docs 5.9.5 The System Catalog Schema: pg_catalog is searched first unless listed).
enum SettingPolicy {
    static let protectedSettings: Set<String> = [
        "transaction_read_only", "default_transaction_read_only", "role", "session_authorization",
        "session_replication_role",
    ]

    /// The search_path value's schemas, in order, as SET or set_config would set them.
    /// True when `pg_catalog` appears but not first.
    static func searchPathDemotesCatalog(_ schemas: [String]) -> Bool {
        let names = schemas.map { $0.trimmingSpaces().lowercased() }.filter { !$0.isEmpty }
        guard let index = names.firstIndex(where: { $0 == "pg_catalog" || $0 == "\"pg_catalog\"" }) else {
            return false
        }
        return index != 0
    }

    /// Setting names are case-insensitive in PostgreSQL (guc.c compares with strcasecmp).
    static func isProtected(_ name: String) -> Bool {
        protectedSettings.contains(name.lowercased())
    }
}

extension String {
    fileprivate func trimmingSpaces() -> String {
        var scalars = Substring(self)
        while scalars.first == " " { scalars.removeFirst() }
        while scalars.last == " " { scalars.removeLast() }
        return String(scalars)
    }
}
