/// The startup packet of a read-only identity follows the same rules as SET
/// (``SettingPolicy/refusal(name:value:)``): every parameter, and every `-c name=value` /
/// `--name=value` in `options`, decoded byte for byte as the backend decodes it
/// (``StartupOptions``). Other switches of `options` (`-e`, `-P`, `-O`, `-F`, `-B`, …) set
/// server settings outside SET's reach and are refused.
///
/// What reaches the server is not the client's `options` text but the accepted settings as
/// separate startup parameters, so the server cannot read them differently from us. The order
/// keeps PostgreSQL's precedence: process_startup_options (src/backend/utils/init/postinit.c)
/// applies the `options` switches first and then the other parameters, "exactly like
/// command-line variables" (SetConfigOption with PGC_S_CLIENT), the later winning.
public enum StartupSettingsPolicy {
    public enum Verdict: Equatable, Sendable {
        /// The parameters to send upstream instead of the client's.
        case accepted([Parameter])
        /// End the session with this FATAL error.
        case refused(Refusal)
    }

    public struct Parameter: Equatable, Sendable {
        public let name: String
        public let value: String
        public init(name: String, value: String) {
            self.name = name
            self.value = value
        }
    }

    public struct Refusal: Equatable, Sendable {
        public let sqlState: String
        public let message: String
        /// The setting or switch refused, for the hint and the log.
        public let subject: String
        /// Refused by the read-only rules, not an error PostgreSQL itself raises for the packet.
        public var byPolicy = true
        /// PostgreSQL's own hint, for its own errors.
        public var hint: String? = nil
    }

    /// Names ProcessStartupPacket (src/backend/postmaster/postmaster.c) reads as something
    /// other than a setting; a `-c` setting of that name is no setting PostgreSQL knows.
    static let packetFields: Set<String> = ["database", "user", "options", "replication"]

    /// Judges `parameters` (without `user`, `database`, `replication` and `_pq_.` options).
    public static func judge(_ parameters: [(name: String, value: String)]) -> Verdict {
        var fromOptions: [Parameter] = []
        // ProcessStartupPacket keeps the last `options` given.
        if let options = parameters.last(where: { $0.name == "options" }) {
            switch StartupOptions.decode(options.value) {
            case .failure(let error):
                // process_postgres_switches's hint for a word getopt cannot read; none for a
                // switch without its value (postgres.c).
                let hint = error.message.hasPrefix("invalid command-line argument") ? "Try \"postgres --help\" for more information." : nil
                return .refused(Refusal(sqlState: error.sqlState, message: error.message, subject: "options", byPolicy: false, hint: hint))
            case .success(let items):
                for item in items {
                    switch item {
                    case .flag(let character, let argument):
                        let word = "-\(character)\(argument ?? "")"
                        return .refused(Refusal(sqlState: "42501",
                            message: "permission denied for command-line switch \"-\(character)\" in options",
                            subject: word))
                    case .setting(let name, let value, _):
                        let lowered = SettingPolicy.asciiLowercased(name)
                        if name.isEmpty || packetFields.contains(lowered) || lowered.hasPrefix("_pq_.") {
                            return .refused(Refusal(sqlState: "42704",
                                message: "unrecognized configuration parameter \"\(name)\"", subject: name, byPolicy: false))
                        }
                        fromOptions.append(Parameter(name: name, value: value))
                    }
                }
            }
        }
        let direct = parameters.filter { $0.name != "options" }.map { Parameter(name: $0.name, value: $0.value) }
        let all = fromOptions + direct
        for parameter in all where SettingPolicy.refusal(name: parameter.name, value: parameter.value) != nil {
            return .refused(Refusal(sqlState: "42501",
                message: "permission denied to set parameter \"\(SettingPolicy.asciiLowercased(parameter.name))\"",
                subject: SettingPolicy.asciiLowercased(parameter.name)))
        }
        return .accepted(all)
    }

    /// The accepted settings with what every read-only session starts with, placed last so
    /// they win over role and database defaults (PGC_S_CLIENT outranks them):
    /// `default_transaction_read_only=on` (so RESET ALL and DISCARD ALL return to read-only),
    /// `standard_conforming_strings=on` (libpg_query lexes with it on; ReadOnlyTripwire), and
    /// `client_encoding=UTF8` unless the client chose it itself (the gate reads text as UTF-8;
    /// without it the session would get the database's encoding;
    /// ``ClientEncodingPolicy/isReadOnlyAllowed(_:)``; any other choice was refused).
    public static func withPinnedSettings(_ accepted: [Parameter]) -> [Parameter] {
        var pinned = accepted
        pinned.append(Parameter(name: "standard_conforming_strings", value: "on"))
        pinned.append(Parameter(name: "default_transaction_read_only", value: "on"))
        if !accepted.contains(where: { SettingPolicy.asciiLowercased($0.name) == "client_encoding" }) {
            pinned.append(Parameter(name: "client_encoding", value: "UTF8"))
        }
        return pinned
    }

    /// The first setting or switch the parameters may not set, or nil.
    public static func protectedSetting(in parameters: [(name: String, value: String)]) -> String? {
        if case .refused(let refusal) = judge(parameters) { return refusal.subject }
        return nil
    }
}
