import Config
import TLS
import Auth
import Logging

/// Everything built from one configuration: shared read-only by all loops. A reload builds a
/// new one; sessions keep the one they started with.
public final class RuntimeConfig: Sendable {
    public let config: PortcullisConfig
    /// The same configuration by reference, for what each session keeps of it.
    public let snapshot: ConfigSnapshot
    public let serverTLS: TLSContext?
    /// Client-side TLS contexts per [databases] entry name.
    public let upstreamTLS: [String: TLSContext]
    /// Seed for SCRAM mock salts (stable for the life of the process, like PostgreSQL's mock nonce).
    public let mockSeed: [UInt8]
    public let logger: Logger
    /// pg_hba.conf / pg_ident.conf (or the simple per-transport methods) and role membership.
    public let accessFiles: AccessFiles
    /// Verifiers read by `auth_query` for this generation (empty again after each reload).
    let authQueryCache: AuthQueryCache

    public init(config: PortcullisConfig, mockSeed: [UInt8], logger: Logger, accessFiles: AccessFiles? = nil) throws(TLSError) {
        self.config = config
        snapshot = ConfigSnapshot(config)
        self.accessFiles = accessFiles ?? AccessFiles(rules: MethodPerTransportRules(config.general), membership: nil)
        self.mockSeed = mockSeed
        self.logger = logger
        authQueryCache = AuthQueryCache(refreshInterval: config.general.authQuery.refreshInterval)
        let tls = config.tls
        if tls.mode != .disable, let cert = tls.certFile, let key = tls.keyFile {
            serverTLS = try TLSContext.server(
                certificateFile: cert, keyFile: key, caFile: tls.caFile,
                minimumProtocol: tls.minProtocol == .tls13 ? .tls13 : .tls12,
                maximumProtocol: tls.maxProtocol.map { $0 == .tls13 ? .tls13 : .tls12 },
                ciphers: tls.ciphers, ciphersuites: tls.ciphersuites)
        } else {
            serverTLS = nil
        }
        // One client context per entry, and one per (entry, identity) for identities with their
        // own upstream certificate; keyed as targets look them up (tlsContextKey).
        let certificateIdentities = config.identities.values.filter { $0.serverSSLCert != nil }
        var upstream: [String: TLSContext] = [:]
        for (name, entry) in config.databases where entry.sslMode != .disable {
            for target in [entry] + certificateIdentities.map({ entry.connecting(as: $0) }) {
                do {
                    let verify = target.sslMode == .verifyCA || target.sslMode == .verifyFull || target.sslRootCert != nil
                    upstream[target.tlsContextKey] = try TLSContext.client(
                        rootCertificateFile: target.sslRootCert, verifyPeer: verify,
                        certificateFile: target.sslCert, keyFile: target.sslKey)
                } catch {
                    let whose = target.certificateIdentity.map { "identity \"\($0)\", " } ?? ""
                    throw TLSError("\(whose)database \"\(name)\": \(error.message)")
                }
            }
        }
        upstreamTLS = upstream
    }

    func upstreamContext(for target: DatabaseTarget) -> TLSContext? {
        upstreamTLS[target.tlsContextKey]
    }
}

/// An immutable configuration shared by reference: values that keep "the configuration" (a
/// session's startup machine) hold this instead of an inline copy of ``PortcullisConfig``.
public final class ConfigSnapshot: Sendable {
    public let value: PortcullisConfig
    public init(_ value: PortcullisConfig) { self.value = value }
}
