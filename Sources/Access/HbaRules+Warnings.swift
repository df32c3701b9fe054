import Config

/// Lines PostgreSQL accepts without a word but that deserve one.
extension HbaRules {
    /// `password` on a line that can match TCP connections without TLS (`host`, `hostnossl`,
    /// `hostnogssenc`): PostgreSQL then sends the password in clear over the network (docs
    /// 21.5 "Password Authentication": "the password is sent in clear text over the network
    /// ... should not be used unless the connection is protected by SSL encryption").
    /// Portcullis behaves the same and says so, with the line, at every load and in
    /// `check-config` (a Portcullis warning; PostgreSQL has none).
    public var cleartextPasswordWarnings: [ConfigError] {
        rules.compactMap { rule in
            guard rule.method == .password else { return nil }
            switch rule.connectionType {
            case .host, .hostNoSSL, .hostNoGSSEnc:
                return ConfigError(
                    file: rule.fileName, line: rule.lineNumber,
                    message: "warning: authentication method \"password\" on a \"\(rule.connectionType.rawValue)\" line sends passwords in clear text over TCP connections without SSL; use hostssl or scram-sha-256")
            case .local, .hostSSL, .hostGSSEnc:
                return nil
            }
        }
    }
}
