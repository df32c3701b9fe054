import Config

/// A loaded pg_hba.conf: the valid lines in file order (includes spliced in).
///
/// Implements PostgreSQL 15–17 (docs 21.1 "The pg_hba.conf File"; src/backend/libpq/hba.c
/// load_hba / check_hba), including the PostgreSQL 16 additions (regular expressions in the
/// database and user columns, include / include_if_exists / include_dir).
public struct HbaRules: Sendable, Equatable {
    public var rules: [HbaRule]

    /// Reads `path` (and whatever it includes) through `files`.
    public static func load(path: String, files: some ConfigFileSource) -> Result<HbaRules, ConfigErrors> {
        AuthFile.load(path: path, files: files) { parse(text: $0, fileName: path, files: files) }
    }

    /// Parses `text` as the contents of `fileName`; relative `@file` and include references
    /// are resolved against the directory of `fileName` and read through `files`.
    public static func parse(text: String, fileName: String, files: some ConfigFileSource) -> Result<HbaRules, ConfigErrors> {
        var (rules, errors) = AuthFile.parseLines(text: text, fileName: fileName, files: files, HbaLineParser.parse)
        if errors.isEmpty, rules.isEmpty {
            errors.append(ConfigError(file: fileName, line: 0,
                                      message: "configuration file \"\(fileName)\" contains no entries"))
        }
        return errors.isEmpty ? .success(HbaRules(rules: rules)) : .failure(ConfigErrors(errors: errors))
    }

    /// check_hba(): the first line whose connection type, address, database and user match,
    /// or nil — PostgreSQL's implicit reject. A matching `reject` line is returned as such;
    /// the caller refuses with `HbaRejection.rejectMessage`.
    public func firstMatch(_ attempt: ConnectionAttempt, environment: HbaEnvironment) -> HbaRule? {
        var hostname = HostnameState.unresolved
        for rule in rules {
            guard connectionTypeMatches(rule.connectionType, attempt.kind) else { continue }
            if let address = rule.address {
                guard addressMatches(address, attempt.clientAddress, environment, &hostname) else { continue }
            }
            guard databaseMatches(rule.databases, attempt, environment) else { continue }
            guard userMatches(rule.users, user: attempt.user, environment) else { continue }
            return rule
        }
        return nil
    }

    private func connectionTypeMatches(_ type: HbaConnectionType, _ kind: ConnectionAttempt.Kind) -> Bool {
        switch (type, kind) {
        case (.local, .local): true
        case (.local, .host): false
        case (.host, .host), (.hostNoGSSEnc, .host): true
        case (.hostSSL, .host(let ssl)): ssl
        case (.hostNoSSL, .host(let ssl)): !ssl
        case (.hostGSSEnc, .host): false
        case (.host, .local), (.hostSSL, .local), (.hostNoSSL, .local), (.hostGSSEnc, .local), (.hostNoGSSEnc, .local): false
        }
    }

    /// What is known about the client's host name during one check_hba() scan
    /// (port->remote_hostname / remote_hostname_resolv).
    enum HostnameState {
        case unresolved
        case failed
        case resolved(String, forwardChecked: Bool)
    }

    func addressMatches(_ match: HbaAddressMatch, _ client: IPAddress?, _ environment: HbaEnvironment,
                                _ hostname: inout HostnameState) -> Bool {
        switch match {
        case .all:
            return true
        case .network(let network, let mask):
            guard let client else { return false }
            return client.isIn(network: network, mask: mask)
        case .sameHost:
            guard let client else { return false }
            return environment.localInterfaces.contains { interface in
                guard let allOnes = IPAddress.mask(bits: interface.address.family == .v4 ? 32 : 128,
                                                   family: interface.address.family) else { return false }
                return client.isIn(network: interface.address, mask: allOnes)
            }
        case .sameNet:
            guard let client else { return false }
            return environment.localInterfaces.contains { client.isIn(network: $0.address, mask: $0.netmask) }
        case .hostname(let pattern):
            guard let client else { return false }
            return hostnameMatches(pattern, client: client, environment.hostnameResolver, &hostname)
        }
    }

    /// check_hostname(): reverse lookup once, compare, then confirm by a forward lookup that
    /// must return the client address; any failure makes later host-name lines fail too.
    private func hostnameMatches(_ pattern: String, client: IPAddress, _ resolver: HostnameResolver,
                                 _ state: inout HostnameState) -> Bool {
        let name: String
        switch state {
        case .failed:
            return false
        case .unresolved:
            guard let reverse = resolver.reverseLookup(client) else {
                state = .failed
                return false
            }
            name = reverse
            state = .resolved(reverse, forwardChecked: false)
        case .resolved(let known, let forwardChecked):
            name = known
            if forwardChecked { return Self.hostname(name, matches: pattern) }
        }
        guard Self.hostname(name, matches: pattern) else { return false }
        guard let addresses = resolver.forwardLookup(name), addresses.contains(client) else {
            state = .failed
            return false
        }
        state = .resolved(name, forwardChecked: true)
        return true
    }

    /// hostname_match(): ASCII case-insensitive; a leading "." makes it a suffix match.
    static func hostname(_ actual: String, matches pattern: String) -> Bool {
        let actualLower = Array(actual.utf8).map(asciiLower)
        let patternLower = Array(pattern.utf8).map(asciiLower)
        if patternLower.first == UInt8(ascii: ".") {
            return actualLower.count >= patternLower.count && Array(actualLower.suffix(patternLower.count)) == patternLower
        }
        return actualLower == patternLower
    }

    /// check_db(). A physical replication connection matches only the `replication` keyword.
    private func databaseMatches(_ patterns: [HbaNamePattern], _ attempt: ConnectionAttempt,
                                 _ environment: HbaEnvironment) -> Bool {
        for pattern in patterns {
            let token = pattern.token
            if attempt.isReplication {
                if token.isKeyword("replication") { return true }
                continue
            }
            if token.isKeyword("all") { return true }
            if token.isKeyword("sameuser") {
                if sameBytes(attempt.database, attempt.user) { return true }
            } else if token.isKeyword("samerole") || token.isKeyword("samegroup") {
                if environment.isMember(attempt.user, attempt.database) { return true }
            } else if token.isKeyword("replication") {
                continue
            } else if let regex = pattern.regex {
                if regex.match(attempt.database) != nil { return true }
            } else if sameBytes(token.text, attempt.database) {
                return true
            }
        }
        return false
    }

    /// check_role() (case-sensitive, as check_hba calls it).
    private func userMatches(_ patterns: [HbaNamePattern], user: String, _ environment: HbaEnvironment) -> Bool {
        patterns.contains { RoleMatching.matches($0, user: user, caseInsensitive: false, isMember: environment.isMember) }
    }
}

/// strcmp equality: byte for byte, not Swift's Unicode canonical equivalence
/// ("é" precomposed and decomposed are different role names to PostgreSQL).
func sameBytes(_ lhs: String, _ rhs: String) -> Bool {
    lhs.utf8.elementsEqual(rhs.utf8)
}

func asciiLower(_ byte: UInt8) -> UInt8 {
    byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z") ? byte + 32 : byte
}

/// check_role() for one token, shared by pg_hba.conf and pg_ident.conf.
enum RoleMatching {
    static func matches(_ pattern: HbaNamePattern, user: String, caseInsensitive: Bool,
                        isMember: (String, String) -> Bool) -> Bool {
        let token = pattern.token
        if token.isMembershipCheck {
            return isMember(user, String(decoding: token.text.utf8.dropFirst(), as: UTF8.self))
        }
        if token.isKeyword("all") { return true }
        if let regex = pattern.regex { return regex.match(user) != nil }
        if caseInsensitive { return Array(token.text.utf8).map(asciiLower) == Array(user.utf8).map(asciiLower) }
        return sameBytes(token.text, user)
    }
}
