/// The [identities] section: who may log in through Portcullis, with what verifier, and as
/// which upstream role. Values use the same libpq keyword/value syntax as [databases].
extension ConfigBuilder {
    static let identityKeywords = ["mode", "password", "server_user", "server_password", "server_sslcert", "server_sslkey", "audit_statement_text", "audit_classes", "max_connections"]

    mutating func applyIdentity(_ entry: IniDocument.Entry) {
        let name = entry.key
        guard checkName(name, kind: "user", line: entry.line) else { return }
        let pairs: [(key: String, value: String)]
        do {
            pairs = try ConnectionString.parse(entry.value, allowingComments: true)
        } catch {
            report(line: entry.line, "identity \"\(name)\": \(error.message)")
            return
        }
        var identity = IdentityConfig(name: name)
        var seen: Set<String> = []
        var valid = true
        for (index, (keyword, value)) in pairs.enumerated() {
            guard seen.insert(keyword).inserted else {
                report(line: entry.line, "identity \"\(name)\": keyword \"\(keyword)\" given more than once")
                valid = false
                continue
            }
            do throws(SettingError) {
                switch keyword {
                case "mode":
                    identity.mode = try SettingValue.choice(value, of: IdentityMode.self)
                case "password" where value == "auth_query":
                    identity.passwordFromAuthQuery = true
                case "password":
                    identity.password = try ClientPasswordVerifier.parse(value)
                case "server_user":
                    guard !value.isEmpty else { throw SettingError("server_user: must not be empty") }
                    identity.serverUser = value
                case "server_password":
                    guard !value.isEmpty else { throw SettingError("server_password: must not be empty") }
                    identity.serverPassword = Secret(value)
                case "server_sslcert":
                    guard !value.isEmpty else { throw SettingError("server_sslcert: must not be empty") }
                    identity.serverSSLCert = value
                case "server_sslkey":
                    guard !value.isEmpty else { throw SettingError("server_sslkey: must not be empty") }
                    identity.serverSSLKey = value
                case "audit_statement_text":
                    identity.auditStatementText = try SettingValue.choice(value, of: AuditSettings.TextMode.self)
                case "audit_classes":
                    identity.auditClasses = try Self.auditClasses(value)
                case "max_connections":
                    identity.maxConnections = try SettingValue.integer(value, in: 0...1_000_000)
                default:
                    throw Self.unknownKeyword(keyword, after: pairs[..<index].last(where: { Self.holdsSecret($0.key) })?.key, allowed: Self.identityKeywords)
                }
            } catch {
                let message = keyword == "mode" ? "mode: \(error.message)" : error.message
                report(line: entry.line, "identity \"\(name)\": \(message)")
                valid = false
            }
        }
        if valid && (identity.serverSSLCert == nil) != (identity.serverSSLKey == nil) {
            report(line: entry.line, "identity \"\(name)\": server_sslcert and server_sslkey must be given together")
            valid = false
        }
        if valid {
            config.identities[name] = identity
        }
    }

    /// Without a verifier an identity can only log in where no password is asked for.
    mutating func checkIdentityRelationships() {
        let general = config.general
        // With an hba_file, cert and trust lines need no password; pg_hba.conf decides.
        guard general.hbaFile == nil, general.localAuthMethod != .trust, general.hostAuthMethod != .trust else { return }
        for identity in config.identities.values.sorted(by: { $0.name < $1.name }) where identity.password == nil && !identity.passwordFromAuthQuery {
            report(line: line(of: identity.name, in: "identities") ?? 0,
                   "identity \"\(identity.name)\": password is required because neither local_auth_method "
                       + "nor host_auth_method is trust")
        }
    }
}

extension ConfigBuilder {
    /// An unknown keyword of a connection string, named — unless it follows a secret's value,
    /// of which it is likely the rest (`password=two words=`; found in review: the error went
    /// to the log and the audit stream with part of the password in it).
    /// `after`: the last keyword before it whose value is a secret, if any.
    static func unknownKeyword(_ keyword: String, after secret: String?, allowed: [String]) -> SettingError {
        let list = "allowed keywords are " + allowed.joined(separator: ", ")
        if let secret {
            return SettingError("unknown keyword after the value of \"\(secret)\" (not repeated: it may be part of that value, and a value with white space must be quoted); \(list)")
        }
        return SettingError("unknown keyword \"\(keyword)\"; \(list)")
    }

    static func holdsSecret(_ keyword: String) -> Bool {
        keyword.lowercased().contains("password") || keyword.lowercased().contains("secret")
    }
}
