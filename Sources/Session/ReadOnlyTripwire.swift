import Policy
import Wire

/// The wall behind the read-only gate: it watches what the *server* says about the session
/// and ends a read-only session as soon as the server reports a state in which the gate's
/// judgement no longer holds, whatever got it there. Pure: reported settings in, verdicts out.
///
/// PostgreSQL reports settings marked `GUC_REPORT` in ParameterStatus at start-up and after
/// every change (docs 55.2.7 Asynchronous Operations; src/backend/utils/misc/guc.c,
/// ReportGUCOption). Since PostgreSQL 14 `default_transaction_read_only` is one of them, next
/// to `client_encoding`, `standard_conforming_strings`, `session_authorization` and
/// `is_superuser`. The watched rules:
///
/// - `default_transaction_read_only` must be `on`: the proxy puts it in the start-up packet, so
///   `off` means something turned read-only mode off (a function with `set_config`, a stale
///   catalog snapshot, a rule the gate missed).
/// - `client_encoding` must be UTF8, the encoding the classifier reads text in
///   (``ClientEncodingPolicy/isReadOnlyAllowed(_:)``): the proxy asks for it at start-up, so any
///   other value means something changed it.
/// - `standard_conforming_strings` must be `on`: libpg_query lexes `'…\'` as PostgreSQL does
///   with it on (src/backend/parser/scan.l, the `xq`/`xe` states); with it off a backslash
///   would hide a quote from the classifier.
/// - `session_authorization` and `is_superuser` must keep the values the session started with.
///
/// PostgreSQL before 14 does not report `default_transaction_read_only`; its absence at
/// start-up is itself a breach (fail closed).
package struct ReadOnlyTripwire {
    package enum Verdict: Equatable {
        case holds
        /// End the session now; the text says what the server reported.
        case breached(String)
    }

    private var sessionAuthorization: String?
    private var isSuperuser: String?

    package init() {}

    /// The ParameterStatus values of the server's start-up, in the order it sent them.
    package mutating func startupParametersReceived(_ parameters: [(String, String)]) -> Verdict {
        for (name, value) in parameters {
            if case .breached(let reason) = parameterStatusReceived(name: name, value: value) { return .breached(reason) }
        }
        let names = Set(parameters.map { $0.0.lowercased() })
        for required in ["default_transaction_read_only", "client_encoding", "standard_conforming_strings"]
        where !names.contains(required) {
            return .breached("the server did not report \(required) (PostgreSQL 14 or later is required for read-only identities)")
        }
        return .holds
    }

    /// One ParameterStatus from the server, at start-up or later in the session.
    package mutating func parameterStatusReceived(name: String, value: String) -> Verdict {
        switch name.lowercased() {
        case "default_transaction_read_only":
            return value == "on" ? .holds : .breached("the server reported default_transaction_read_only = \(value)")
        case "client_encoding":
            return ClientEncodingPolicy.isReadOnlyAllowed(value)
                ? .holds : .breached("the server reported client_encoding = \(value); read-only identities must use UTF8")
        case "standard_conforming_strings":
            return value == "on" ? .holds : .breached("the server reported standard_conforming_strings = \(value)")
        case "session_authorization":
            return Self.unchanged(&sessionAuthorization, value, name: "session_authorization")
        case "is_superuser":
            return Self.unchanged(&isSuperuser, value, name: "is_superuser")
        default:
            return .holds
        }
    }

    private static func unchanged(_ recorded: inout String?, _ value: String, name: String) -> Verdict {
        guard let first = recorded else {
            recorded = value
            return .holds
        }
        return first == value ? .holds : .breached("the server reported \(name) = \(value) (was \(first))")
    }

    /// The FATAL the client gets: the session ends as PostgreSQL ends one it must not continue.
    package static func errorFields(for reason: String, identity: String) -> ErrorFields {
        .error(sqlState: SQLState.readOnlySQLTransaction,
               message: "terminating connection because the read-only session of \"\(identity)\" left read-only mode",
               detail: reason,
               hint: "Portcullis identity \"\(identity)\" is read-only.",
               severity: "FATAL")
    }
}
