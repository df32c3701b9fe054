/// One [identities] entry: a client user allowed to log in through Portcullis.
public struct IdentityConfig: Sendable {
    public var name: String
    public var mode: IdentityMode
    /// What the client's password is checked against; nil = no password (only `trust` works).
    public var password: ClientPasswordVerifier?
    /// `password=auth_query`: the verifier is read from the upstream (AuthQuerySettings).
    public var passwordFromAuthQuery = false
    /// Upstream role; nil = the database entry's `user`, else the client's user name.
    public var serverUser: String?
    /// Upstream role's password (plaintext or `enc:...`).
    public var serverPassword: Secret?
    /// A client certificate and key the upstream role authenticates with (pg_hba.conf `cert`
    /// on the server), instead of or besides a password; libpq's sslcert/sslkey per identity.
    public var serverSSLCert: String?
    public var serverSSLKey: String?
    /// Overrides `audit_statement_text` for this identity.
    public var auditStatementText: AuditSettings.TextMode?
    /// Overrides `audit_classes` (and the database entry's) for this identity.
    public var auditClasses: Set<String>?
    /// Overrides `max_identity_connections` for this identity (0 = no limit).
    public var maxConnections: Int?

    public init(
        name: String,
        mode: IdentityMode = .readOnly,
        password: ClientPasswordVerifier? = nil,
        serverUser: String? = nil,
        serverPassword: Secret? = nil
    ) {
        self.name = name
        self.mode = mode
        self.password = password
        self.serverUser = serverUser
        self.serverPassword = serverPassword
    }
}

public enum IdentityMode: String, Sendable, CaseIterable {
    case readOnly = "read-only"
    case readWrite = "read-write"
}

/// A stored password verifier in pg_authid.rolpassword format
/// (PostgreSQL 53.8 pg_authid; the SCRAM form is described in 21.5 Password Authentication).
public enum ClientPasswordVerifier: Sendable, Equatable {
    /// `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`, already base64-decoded.
    case scramSHA256(iterations: Int, salt: [UInt8], storedKey: [UInt8], serverKey: [UInt8])
    /// `md5` followed by 32 lower-case hex digits, kept as written.
    case md5(String)
}
