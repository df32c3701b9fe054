/// The [tls] section: client-facing TLS, after PostgreSQL's ssl_* server parameters
/// (PostgreSQL 20.3.3 SSL).
extension ConfigBuilder {
    mutating func applyTLS(_ entry: IniDocument.Entry) throws(SettingError) -> Bool {
        let value = entry.value
        switch entry.key {
        case "client_tls":
            config.tls.mode = try SettingValue.choice(value, of: ClientTLSMode.self)
        case "client_tls_cert_file":
            config.tls.certFile = value.isEmpty ? nil : value
        case "client_tls_key_file":
            config.tls.keyFile = value.isEmpty ? nil : value
        case "client_tls_ca_file":
            config.tls.caFile = value.isEmpty ? nil : value
        case "client_tls_min_protocol":
            config.tls.minProtocol = try protocolVersion(value)
        case "client_tls_max_protocol":
            config.tls.maxProtocol = value.isEmpty ? nil : try protocolVersion(value)
        case "client_tls_ciphers":
            guard !value.isEmpty else {
                throw SettingError("must not be empty (the default is \(ClientTLSSettings.defaultCiphers))")
            }
            config.tls.ciphers = value
        case "client_tls_ciphersuites":
            config.tls.ciphersuites = value.isEmpty ? nil : value
        case "client_tls_direct":
            config.tls.directTLS = try SettingValue.boolean(value)
        default:
            return false
        }
        return true
    }

    private func protocolVersion(_ value: String) throws(SettingError) -> TLSProtocolVersion {
        if ["tlsv1", "tlsv1.0", "tlsv1.1", "sslv3"].contains(value.lowercased()) {
            throw SettingError("\(value) is not supported because it is insecure; use TLSv1.2 or TLSv1.3")
        }
        return try SettingValue.choice(value, of: TLSProtocolVersion.self)
    }

    mutating func checkTLSRelationships() {
        let tls = config.tls
        switch tls.mode {
        case .require, .allow:
            var missing: [String] = []
            if tls.certFile == nil { missing.append("client_tls_cert_file") }
            if tls.keyFile == nil { missing.append("client_tls_key_file") }
            if !missing.isEmpty {
                let explicitly = line(of: "client_tls", in: "tls") == nil ? " (the default)" : ""
                report(line: lineForProblem(with: "client_tls", in: "tls"),
                       "client_tls = \(tls.mode.rawValue)\(explicitly) needs "
                           + missing.joined(separator: " and ")
                           + "; set them in [tls], or set client_tls = disable")
            }
        case .disable:
            break
        }
        if let maximum = tls.maxProtocol, maximum < tls.minProtocol {
            report(line: lineForProblem(with: "client_tls_max_protocol", in: "tls"),
                   "client_tls_max_protocol (\(maximum.rawValue)) is lower than client_tls_min_protocol "
                       + "(\(tls.minProtocol.rawValue))")
        }
    }
}
