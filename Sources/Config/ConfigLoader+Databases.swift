/// The [databases] section: each value is a libpq keyword/value connection string
/// (PostgreSQL 34.1.2 Parameter Key Words), restricted to the keywords a proxy can honour and
/// to sslmodes that cannot fall back to plaintext.
extension ConfigBuilder {
    static let databaseKeywords = [
        "host", "hostaddr", "port", "dbname", "user", "password", "sslmode", "sslrootcert",
        "sslcert", "sslkey", "sslsni", "connect_timeout", "application_name", "readable_foreign_servers",
        "trusted_extensions", "audit_classes", "auth_user", "auth_password", "auth_dbname",
        "pool_mode", "transaction_pin",
    ]

    mutating func applyDatabase(_ entry: IniDocument.Entry) {
        sawDatabaseEntry = true
        let name = entry.key
        guard checkName(name, kind: "database", line: entry.line) else { return }
        let pairs: [(key: String, value: String)]
        do {
            pairs = try ConnectionString.parse(entry.value, allowingComments: true)
        } catch {
            report(line: entry.line, "database \"\(name)\": \(error.message)")
            return
        }
        var problems: [String] = []
        if let target = Self.databaseTarget(name: name, pairs: pairs, problems: &problems) {
            config.databases[name] = target
        }
        for problem in problems {
            report(line: entry.line, "database \"\(name)\": \(problem)")
        }
    }

    /// Builds the target, appending one message per problem; nil when any was found.
    static func databaseTarget(
        name: String, pairs: [(key: String, value: String)], problems: inout [String]
    ) -> DatabaseTarget? {
        var target = DatabaseTarget(name: name, host: "")
        var seen: Set<String> = []
        var host: String?
        var sslMode: UpstreamSSLMode?
        // Checks that depend on the host kind and sslmode are skipped when either is unusable,
        // so one mistake does not produce a cascade of follow-on messages.
        var sslModeUsable = true
        let problemsBefore = problems.count

        for (index, (keyword, value)) in pairs.enumerated() {
            guard seen.insert(keyword).inserted else {
                problems.append("keyword \"\(keyword)\" given more than once")
                continue
            }
            do throws(SettingError) {
                switch keyword {
                case "host":
                    host = try upstreamHost(value)
                case "hostaddr":
                    guard SettingValue.isIPAddress(value) else {
                        throw SettingError("hostaddr \"\(value)\" is not a literal IPv4 or IPv6 address")
                    }
                    target.hostaddr = value
                case "port":
                    target.port = UInt16(try SettingValue.integer(value, in: 1...65535))
                case "dbname":
                    target.dbname = try nonEmpty(value, keyword)
                case "user":
                    target.user = try nonEmpty(value, keyword)
                case "password":
                    target.password = Secret(try nonEmpty(value, keyword))
                case "sslmode":
                    sslModeUsable = false
                    sslMode = try upstreamSSLMode(value)
                    sslModeUsable = true
                case "sslrootcert":
                    target.sslRootCert = try nonEmpty(value, keyword)
                case "sslcert":
                    target.sslCert = try nonEmpty(value, keyword)
                case "sslkey":
                    target.sslKey = try nonEmpty(value, keyword)
                case "sslsni":
                    // libpq accepts exactly "0" and "1" here.
                    guard value == "0" || value == "1" else { throw SettingError("must be 0 or 1") }
                    target.sslSNI = value == "1"
                case "connect_timeout":
                    let timeout = try SettingValue.duration(value)
                    target.connectTimeout = timeout == .zero ? nil : timeout
                case "application_name":
                    target.applicationName = value.isEmpty ? nil : value
                case "readable_foreign_servers":
                    // Not a libpq keyword: which foreign servers' tables read-only identities may
                    // read, comma-separated server names (pg_foreign_server.srvname).
                    target.readableForeignServers = try nameList(value, of: "foreign server")
                case "trusted_extensions":
                    // Not a libpq keyword: extensions whose objects count as built-in for the
                    // read-only checks (pg_extension.extname).
                    target.trustedExtensions = try nameList(value, of: "extension")
                case "audit_classes":
                    // Not a libpq keyword: the audit classes recorded for sessions of this
                    // entry (an identity's own audit_classes wins), docs/AUDIT.md.
                    target.auditClasses = try auditClasses(value)
                case "auth_user":
                    target.authUser = try nonEmpty(value, keyword)
                case "auth_password":
                    target.authPassword = Secret(try nonEmpty(value, keyword))
                case "auth_dbname":
                    target.authDbname = try nonEmpty(value, keyword)
                case "pool_mode":
                    // Not a libpq keyword: session (default) or transaction pooling.
                    target.poolMode = try SettingValue.choice(value, of: PoolMode.self)
                case "transaction_pin":
                    target.transactionPin = try SettingValue.choice(value, of: TransactionPinPolicy.self)
                default:
                    throw Self.unknownKeyword(keyword, after: pairs[..<index].last(where: { Self.holdsSecret($0.key) })?.key, allowed: databaseKeywords)
                }
            } catch {
                let alreadyNamed = error.message.hasPrefix("unknown keyword") || error.message.hasPrefix(keyword)
                problems.append(alreadyNamed ? error.message : "\(keyword): \(error.message)")
            }
        }

        if let host {
            target.host = host
        } else if !seen.contains("host") {
            problems.append("host is required")
        }
        if (target.sslCert == nil) != (target.sslKey == nil) {
            problems.append("sslcert and sslkey must be given together")
        }
        guard let host, sslModeUsable else { return nil }
        // Over a Unix-domain socket libpq never uses TLS, so the secure default for a socket
        // host is disable; asking for TLS there is a mistake worth reporting.
        let isSocket = host.hasPrefix("/")
        target.sslMode = sslMode ?? (isSocket ? .disable : .verifyFull)
        if isSocket, let sslMode, sslMode != .disable {
            problems.append("sslmode=\(sslMode.rawValue) cannot be used with a Unix-domain socket host "
                + "(TLS is never used over Unix-domain sockets); use sslmode=disable or omit it")
        }
        switch target.sslMode {
        case .verifyCA, .verifyFull:
            if target.sslRootCert == nil {
                problems.append("sslmode=\(target.sslMode.rawValue) requires sslrootcert "
                    + "(a server process has no ~/.postgresql/root.crt to fall back on); "
                    + "give a CA file, or sslrootcert=system for the operating system's trust store")
            } else if target.sslRootCert == "system", target.sslMode == .verifyCA {
                problems.append("sslrootcert=system requires sslmode=verify-full: any publicly trusted "
                    + "certificate would pass verify-ca")
            }
        case .disable, .require:
            break
        }
        return problems.count == problemsBefore ? target : nil
    }

    private static func nonEmpty(_ value: String, _ keyword: String) throws(SettingError) -> String {
        guard !value.isEmpty else { throw SettingError("must not be empty") }
        return value
    }

    private static func upstreamSSLMode(_ value: String) throws(SettingError) -> UpstreamSSLMode {
        switch value {
        case "allow", "prefer":
            throw SettingError("sslmode=\(value) is refused: it silently falls back to an unencrypted "
                + "connection when the server does not offer TLS; use verify-full (the default), "
                + "verify-ca or require, or disable to state that plaintext is intended")
        default:
            guard let mode = UpstreamSSLMode(rawValue: value) else {
                throw SettingError("\"\(value)\" is not valid; expected one of: "
                    + UpstreamSSLMode.allCases.map(\.rawValue).joined(separator: ", "))
            }
            return mode
        }
    }

    /// A host name, literal address, or absolute socket directory (libpq's three forms).
    /// libpq's comma-separated host lists are not supported.
    private static func upstreamHost(_ value: String) throws(SettingError) -> String {
        guard !value.isEmpty else { throw SettingError("must not be empty") }
        if value.contains(",") {
            throw SettingError("multiple hosts are not supported; give one host per database entry")
        }
        if value.hasPrefix("/") || SettingValue.isIPAddress(value) {
            return value
        }
        let labels = value.split(separator: ".", omittingEmptySubsequences: false)
        let validLabel: (Substring) -> Bool = { label in
            !label.isEmpty && label.count <= 63 && label.first != "-" && label.last != "-"
                && label.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_") }
        }
        guard value.utf8.count <= 253, labels.allSatisfy(validLabel) else {
            throw SettingError("\"\(value)\" is not a valid host name, IP address or absolute socket directory")
        }
        return value
    }

    mutating func checkDatabaseRelationships() {
        // When entries exist but were all rejected, their own errors already say why.
        if config.databases.isEmpty, !sawDatabaseEntry {
            report(line: sectionLines["databases"] ?? 0,
                   "no databases configured; add at least one entry to [databases]")
        }
    }
}

extension ConfigBuilder {
    /// A comma-separated list of catalog object names, spaces around each ignored.
    static func nameList(_ value: String, of kind: String) throws(SettingError) -> [String] {
        let names = value.split(separator: ",", omittingEmptySubsequences: false).map {
            String($0.drop { $0 == " " }.reversed().drop { $0 == " " }.reversed())
        }
        guard !names.isEmpty, !names.contains(where: \.isEmpty) else {
            throw SettingError("must be a comma-separated list of \(kind) names")
        }
        return names
    }
}
