/// Which run-time settings a read-only identity may change (SET, RESET, set_config).
///
/// Deny-list on purpose: applications set many harmless and custom (`app.x`) settings,
/// while only a few settings undo the read-only guarantee. Refused:
/// - `transaction_read_only`, `default_transaction_read_only` — turning read-only off
///   (docs 20.11.1 Statement Behavior);
/// - `role`, `session_authorization` — switching to an identity with more rights;
/// - `session_replication_role` — disables triggers and rules;
/// - `transaction_isolation`/`default_transaction_isolation` are allowed (they cannot write).
enum SettingPolicy {
    static let protectedSettings: Set<String> = [
        "transaction_read_only", "default_transaction_read_only", "role", "session_authorization",
        "session_replication_role",
    ]

    /// Setting names are case-insensitive in PostgreSQL (guc.c compares with strcasecmp).
    static func isProtected(_ name: String) -> Bool {
        protectedSettings.contains(name.lowercased())
    }
}
