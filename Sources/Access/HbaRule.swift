/// The record type of a pg_hba.conf line (docs 21.1).
public enum HbaConnectionType: String, Sendable, Equatable {
    case local
    case host
    case hostSSL = "hostssl"
    case hostNoSSL = "hostnossl"
    /// Matches only GSSAPI-encrypted connections. Portcullis has no GSSAPI encryption, so
    /// these lines load but never match — as in a PostgreSQL whose clients never use GSS
    /// encryption. (A PostgreSQL built without GSSAPI also keeps the line, and only logs
    /// "hostgssenc record cannot match because GSSAPI is not supported by this build".)
    case hostGSSEnc = "hostgssenc"
    /// Matches connections without GSSAPI encryption, i.e. every TCP connection to Portcullis.
    case hostNoGSSEnc = "hostnogssenc"
}

/// The authentication methods Portcullis can perform. PostgreSQL's other methods (ident on
/// TCP, gss, sspi, pam, bsd, ldap, radius) are refused at load time (fail closed).
public enum AuthMethod: Sendable, Equatable {
    case trust
    case reject
    case scramSHA256
    case md5
    case password
    case cert
    case peer

    /// The keyword as written in pg_hba.conf.
    public var keyword: String {
        switch self {
        case .trust: "trust"
        case .reject: "reject"
        case .scramSHA256: "scram-sha-256"
        case .md5: "md5"
        case .password: "password"
        case .cert: "cert"
        case .peer: "peer"
        }
    }
}

/// `clientcert=` (hostssl lines only). Absent means no client certificate is required.
public enum ClientCertMode: String, Sendable, Equatable {
    case verifyCA = "verify-ca"
    case verifyFull = "verify-full"
}

/// `clientname=`: which certificate name `cert` / `clientcert=verify-full` compares.
public enum ClientNameMode: String, Sendable, Equatable {
    case commonName = "CN"
    case distinguishedName = "DN"
}

/// The options of a pg_hba.conf line that Portcullis acts on.
public struct HbaOptions: Sendable, Equatable {
    /// `cert` implies `.verifyFull` (hba.c parse_hba_line).
    public var clientCert: ClientCertMode?
    public var clientName: ClientNameMode
    public var mapName: String?

    public init(clientCert: ClientCertMode? = nil, clientName: ClientNameMode = .commonName, mapName: String? = nil) {
        self.clientCert = clientCert
        self.clientName = clientName
        self.mapName = mapName
    }
}

/// The address column of a host* line.
public enum HbaAddressMatch: Sendable, Equatable {
    case all
    case sameHost
    case sameNet
    /// CIDR or address plus separate mask column.
    case network(IPAddress, mask: IPAddress)
    /// A host name, or a suffix when it starts with "." (matched case-insensitively after
    /// a reverse lookup of the client address confirmed by a forward lookup).
    case hostname(String)
}

/// A database or user token with its compiled regular expression when it starts with "/"
/// (PostgreSQL 16+; any token starting with "/" is a regex, quoted or not).
public struct HbaNamePattern: Sendable, Equatable, CustomStringConvertible {
    public var token: AuthToken
    public var regex: PosixRegex?

    public var description: String { token.description }
}

/// One valid pg_hba.conf line.
public struct HbaRule: Sendable, Equatable {
    public var fileName: String
    public var lineNumber: Int
    public var connectionType: HbaConnectionType
    public var databases: [HbaNamePattern]
    public var users: [HbaNamePattern]
    /// nil for `local` lines, which have no address column.
    public var address: HbaAddressMatch?
    public var method: AuthMethod
    public var options: HbaOptions
}
