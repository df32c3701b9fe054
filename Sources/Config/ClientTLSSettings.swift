/// The [tls] section: TLS termination towards clients, modelled on PostgreSQL's server-side
/// ssl_* parameters (PostgreSQL 19.9 Secure TCP/IP Connections with SSL).
public struct ClientTLSSettings: Sendable {
    public var mode: ClientTLSMode
    public var certFile: String?
    public var keyFile: String?
    /// When set, client certificates are requested and verified if presented (ssl_ca_file).
    public var caFile: String?
    public var minProtocol: TLSProtocolVersion
    /// nil = no upper bound beyond what OpenSSL supports.
    public var maxProtocol: TLSProtocolVersion?
    /// OpenSSL cipher list for TLS 1.2 and below (ssl_ciphers).
    public var ciphers: String
    /// TLS 1.3 cipher suites; nil = OpenSSL's default.
    public var ciphersuites: String?
    /// Accept PostgreSQL 17 direct TLS connections (TLS ClientHello without SSLRequest).
    public var directTLS: Bool

    public static let defaultCiphers = "HIGH:MEDIUM:+3DES:!aNULL"

    public init(
        mode: ClientTLSMode = .require,
        certFile: String? = nil,
        keyFile: String? = nil,
        caFile: String? = nil,
        minProtocol: TLSProtocolVersion = .tls12,
        maxProtocol: TLSProtocolVersion? = nil,
        ciphers: String = ClientTLSSettings.defaultCiphers,
        ciphersuites: String? = nil,
        directTLS: Bool = true
    ) {
        self.mode = mode
        self.certFile = certFile
        self.keyFile = keyFile
        self.caFile = caFile
        self.minProtocol = minProtocol
        self.maxProtocol = maxProtocol
        self.ciphers = ciphers
        self.ciphersuites = ciphersuites
        self.directTLS = directTLS
    }
}

public enum ClientTLSMode: String, Sendable, CaseIterable {
    /// Plaintext TCP clients are refused. Unix-socket clients never use TLS.
    case require
    /// TLS is offered; plaintext TCP clients are accepted too.
    case allow
    /// No TLS; SSLRequest is answered with 'N'.
    case disable
}

/// Spelled as PostgreSQL's ssl_min_protocol_version values.
public enum TLSProtocolVersion: String, Sendable, CaseIterable, Comparable {
    case tls12 = "TLSv1.2"
    case tls13 = "TLSv1.3"

    public static func < (lhs: TLSProtocolVersion, rhs: TLSProtocolVersion) -> Bool {
        switch (lhs, rhs) {
        case (.tls12, .tls13): true
        case (.tls12, .tls12), (.tls13, .tls12), (.tls13, .tls13): false
        }
    }
}
