import Config

/// The pg_hba.conf decision the start-up machine acts on: which authentication method a
/// connection attempt gets and what its options demand (PostgreSQL docs 21.1 The
/// pg_hba.conf File, 21.3 Authentication Methods). Built from a pg_hba.conf rule, or from the
/// simple `local_auth`/`host_auth` settings when no hba_file is configured.
public struct ClientAuthRule: Sendable, Equatable {
    public enum Method: Sendable, Equatable {
        case trust, reject, scramSHA256, md5, password, cert, peer

        /// The methods that compare a password with a stored verifier.
        var checksPassword: Bool {
            switch self {
            case .scramSHA256, .md5, .password: true
            case .trust, .reject, .cert, .peer: false
            }
        }
    }

    /// `clientcert=` (21.12 Client Certificates); the `cert` method implies verify-full.
    public enum ClientCertificateCheck: Sendable, Equatable {
        case none, verifyCA, verifyFull
    }

    /// `clientname=`: which part of the certificate is the system user name.
    public enum CertificateName: Sendable, Equatable {
        case commonName, distinguishedName
    }

    public var method: Method
    public var clientCertificate: ClientCertificateCheck
    public var certificateName: CertificateName
    /// `map=`: the pg_ident.conf map that relates certificate names to database users.
    public var mapName: String?
    /// Where the rule came from, for the log ("pg_hba.conf:12").
    public var origin: String

    public init(method: Method, clientCertificate: ClientCertificateCheck = .none,
                certificateName: CertificateName = .commonName, mapName: String? = nil, origin: String) {
        self.method = method
        self.clientCertificate = method == .cert ? .verifyFull : clientCertificate
        self.certificateName = certificateName
        self.mapName = mapName
        self.origin = origin
    }
}

/// One connection attempt as pg_hba.conf matching sees it (hba.c check_hba).
public struct ClientAttempt: Sendable, Equatable {
    public var isLocal: Bool
    public var isTLS: Bool
    /// The numeric client address ("127.0.0.1", "::1"); nil for Unix-domain sockets.
    public var remoteAddress: String?
    public var database: String
    public var user: String
    public var isReplication: Bool

    public init(isLocal: Bool, isTLS: Bool, remoteAddress: String?, database: String, user: String, isReplication: Bool) {
        self.isLocal = isLocal
        self.isTLS = isTLS
        self.remoteAddress = remoteAddress
        self.database = database
        self.user = user
        self.isReplication = isReplication
    }
}

/// The rules the start-up machine consults. Implementations are immutable snapshots, swapped
/// whole at reload, so a session sees one consistent set.
public protocol ClientAccessRules: Sendable {
    /// The first matching rule, or nil: no pg_hba.conf entry (implicit reject).
    func rule(for attempt: ClientAttempt) -> ClientAuthRule?
    /// pg_ident.conf: may `systemUser` (a certificate's CN or DN) connect as `databaseUser`
    /// under map `map`? (hba.c check_usermap)
    func mapAllows(map: String, systemUser: String, databaseUser: String) -> Bool
}

/// Without an hba_file: one method for Unix-socket clients and one for TCP clients
/// (`local_auth`, `host_auth` in [general]).
public struct MethodPerTransportRules: ClientAccessRules {
    public let localMethod: AuthMethod
    public let hostMethod: AuthMethod

    public init(localMethod: AuthMethod, hostMethod: AuthMethod) {
        self.localMethod = localMethod
        self.hostMethod = hostMethod
    }

    /// The methods `[portcullis]` configures.
    public init(_ general: GeneralSettings) {
        self.init(localMethod: general.localAuthMethod, hostMethod: general.hostAuthMethod)
    }

    public func rule(for attempt: ClientAttempt) -> ClientAuthRule? {
        let method = attempt.isLocal ? localMethod : hostMethod
        let origin = attempt.isLocal ? "local_auth" : "host_auth"
        switch method {
        case .trust: return ClientAuthRule(method: .trust, origin: origin)
        case .reject: return ClientAuthRule(method: .reject, origin: origin)
        case .scramSHA256: return ClientAuthRule(method: .scramSHA256, origin: origin)
        }
    }

    public func mapAllows(map: String, systemUser: String, databaseUser: String) -> Bool { false }
}
