/// parse_hba_line() and parse_hba_auth_opt() of src/backend/libpq/hba.c (PostgreSQL 15–17),
/// restricted to what Portcullis can enforce. Error texts are PostgreSQL's (the `error`
/// column of pg_hba_file_rules) unless marked as Portcullis' own.
enum HbaLineParser {
    /// Methods PostgreSQL knows but Portcullis cannot perform: refused with a Portcullis
    /// message so that a copied pg_hba.conf never silently degrades (fail closed).
    static let methodsPortcullisCannotPerform: Set<String> = ["ident", "gss", "sspi", "pam", "bsd", "ldap", "radius"]

    /// Options PostgreSQL accepts only for methods Portcullis refuses anyway, with the
    /// method list PostgreSQL names in "authentication option ... is only valid for ...".
    static let optionsOfOtherMethods: [String: String] = [
        "pamservice": "pam", "pam_use_hostname": "pam",
        "ldapurl": "ldap", "ldaptls": "ldap", "ldapscheme": "ldap", "ldapserver": "ldap",
        "ldapport": "ldap", "ldapbinddn": "ldap", "ldapbindpasswd": "ldap",
        "ldapsearchattribute": "ldap", "ldapsearchfilter": "ldap", "ldapbasedn": "ldap",
        "ldapprefix": "ldap", "ldapsuffix": "ldap",
        "krb_realm": "gssapi and sspi", "include_realm": "gssapi and sspi",
        "compat_realm": "sspi", "upn_username": "sspi",
        "radiusservers": "radius", "radiussecrets": "radius",
        "radiusidentifiers": "radius", "radiusports": "radius",
    ]

    static func parse(_ line: TokenizedLine) -> Result<HbaRule, LineError> {
        var fields = line.fields[...]
        let typeTokens = fields.removeFirst()
        if typeTokens.count > 1 { return .failure("multiple values specified for connection type") }
        let connectionType: HbaConnectionType
        switch typeTokens[0].text {
        case "local": connectionType = .local
        case "host": connectionType = .host
        case "hostssl": connectionType = .hostSSL
        case "hostnossl": connectionType = .hostNoSSL
        case "hostgssenc": connectionType = .hostGSSEnc
        case "hostnogssenc": connectionType = .hostNoGSSEnc
        default: return .failure("invalid connection type \"\(typeTokens[0].text)\"")
        }

        guard let databaseTokens = fields.popFirst() else {
            return .failure("end-of-line before database specification")
        }
        let databases: [HbaNamePattern]
        switch compilePatterns(databaseTokens) {
        case .success(let compiled): databases = compiled
        case .failure(let error): return .failure(error)
        }
        guard let userTokens = fields.popFirst() else {
            return .failure("end-of-line before role specification")
        }
        let users: [HbaNamePattern]
        switch compilePatterns(userTokens) {
        case .success(let compiled): users = compiled
        case .failure(let error): return .failure(error)
        }

        var address: HbaAddressMatch?
        if connectionType != .local {
            switch parseAddress(&fields) {
            case .success(let parsed): address = parsed
            case .failure(let error): return .failure(error)
            }
        }

        guard let methodTokens = fields.popFirst() else {
            return .failure("end-of-line before authentication method")
        }
        if methodTokens.count > 1 { return .failure("multiple values specified for authentication type") }
        let methodName = methodTokens[0].text
        var method: AuthMethod
        switch methodName {
        case "trust": method = .trust
        case "reject": method = .reject
        case "scram-sha-256": method = .scramSHA256
        case "md5": method = .md5
        case "password": method = .password
        case "cert": method = .cert
        case "peer": method = .peer
        // PostgreSQL turns ident on local sockets into peer, for backwards compatibility.
        case "ident" where connectionType == .local: method = .peer
        default:
            if methodsPortcullisCannotPerform.contains(methodName) {
                return .failure("authentication method \"\(methodName)\" is not supported by Portcullis")
            }
            return .failure("invalid authentication method \"\(methodName)\"")
        }
        if connectionType != .local, method == .peer {
            return .failure("peer authentication is only supported on local sockets")
        }
        if connectionType != .hostSSL, method == .cert {
            return .failure("cert authentication is only supported on hostssl connections")
        }

        var options = HbaOptions()
        for token in fields.joined() {
            guard let equals = token.text.firstIndex(of: "=") else {
                return .failure("authentication option not in name=value format: \(token.text)")
            }
            let name = String(token.text[..<equals])
            let value = String(token.text[token.text.index(after: equals)...])
            if let message: String = apply(option: name, value: value, method: method,
                                   connectionType: connectionType, to: &options) {
                return .failure(LineError(message))
            }
        }
        if method == .cert { options.clientCert = .verifyFull }
        return .success(HbaRule(fileName: line.fileName, lineNumber: line.lineNumber,
                                connectionType: connectionType, databases: databases, users: users,
                                address: address, method: method, options: options))
    }

    /// regcomp_auth_token() for every token of a database or user field.
    static func compilePatterns(_ tokens: [AuthToken]) -> Result<[HbaNamePattern], LineError> {
        var patterns: [HbaNamePattern] = []
        for token in tokens {
            switch compileIfRegex(token) {
            case .success(let pattern): patterns.append(pattern)
            case .failure(let error): return .failure(error)
            }
        }
        return .success(patterns)
    }

    static func compileIfRegex(_ token: AuthToken) -> Result<HbaNamePattern, LineError> {
        guard token.text.utf8.first == UInt8(ascii: "/") else { return .success(HbaNamePattern(token: token, regex: nil)) }
        let source = String(decoding: token.text.utf8.dropFirst(), as: UTF8.self)
        switch PosixRegex.compile(source) {
        case .success(let regex): return .success(HbaNamePattern(token: token, regex: regex))
        case .failure(let error): return .failure("invalid regular expression \"\(source)\": \(error.message)")
        }
    }

    /// The address column, and the mask column when the address has no CIDR suffix.
    static func parseAddress(_ fields: inout ArraySlice<[AuthToken]>) -> Result<HbaAddressMatch, LineError> {
        guard let addressTokens = fields.popFirst() else {
            return .failure("end-of-line before IP address specification")
        }
        if addressTokens.count > 1 { return .failure("multiple values specified for host address") }
        let token = addressTokens[0]
        if token.isKeyword("all") { return .success(.all) }
        if token.isKeyword("samehost") { return .success(.sameHost) }
        if token.isKeyword("samenet") { return .success(.sameNet) }

        let text = token.text
        let slash = text.firstIndex(of: "/")
        let host = slash.map { String(text[..<$0]) } ?? text
        // getaddrinfo(AI_NUMERICHOST) fails with EAI_NONAME for anything not numeric, and
        // PostgreSQL then takes the token as a host name.
        guard let network = IPAddress(parsing: host) else {
            if slash != nil { return .failure("specifying both host name and CIDR mask is invalid: \"\(text)\"") }
            return .success(.hostname(host))
        }
        if let slash {
            guard let mask = IPAddress.cidrMask(String(text[text.index(after: slash)...]), family: network.family) else {
                return .failure("invalid CIDR mask in address \"\(text)\"")
            }
            return .success(.network(network, mask: mask))
        }
        guard let maskTokens = fields.popFirst() else {
            return .failure("end-of-line before netmask specification")
        }
        if maskTokens.count > 1 { return .failure("multiple values specified for netmask") }
        guard let mask = IPAddress(parsing: maskTokens[0].text) else {
            return .failure("invalid IP mask \"\(maskTokens[0].text)\": Name or service not known")
        }
        if mask.family != network.family { return .failure("IP address and mask do not match") }
        return .success(.network(network, mask: mask))
    }

    /// parse_hba_auth_opt(); nil when the option was applied.
    static func apply(option name: String, value: String, method: AuthMethod,
                      connectionType: HbaConnectionType, to options: inout HbaOptions) -> String? {
        switch name {
        case "map":
            switch method {
            case .peer, .cert:
                options.mapName = value
                return nil
            case .trust, .reject, .scramSHA256, .md5, .password:
                return "authentication option \"map\" is only valid for authentication methods ident, peer, gssapi, sspi, and cert"
            }
        case "clientcert":
            if connectionType != .hostSSL { return "clientcert can only be configured for \"hostssl\" rows" }
            switch value {
            case "verify-full":
                options.clientCert = .verifyFull
            case "verify-ca":
                if method == .cert {
                    return "clientcert can only be set to \"verify-full\" when using \"cert\" authentication"
                }
                options.clientCert = .verifyCA
            default:
                return "invalid value for clientcert: \"\(value)\""
            }
            return nil
        case "clientname":
            if connectionType != .hostSSL { return "clientname can only be configured for \"hostssl\" rows" }
            guard let mode = ClientNameMode(rawValue: value) else { return "invalid value for clientname: \"\(value)\"" }
            options.clientName = mode
            return nil
        default:
            if let methods = optionsOfOtherMethods[name] {
                return "authentication option \"\(name)\" is only valid for authentication methods \(methods)"
            }
            return "unrecognized authentication option name: \"\(name)\""
        }
    }
}
