import CPortcullisShims
import Glibc

public struct TLSError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }

    /// The first queued OpenSSL error, prefixed with what we were doing.
    static func openSSL(_ context: String) -> TLSError {
        var buffer = [CChar](repeating: 0, count: 256)
        let code = pc_ssl_error_string(&buffer, buffer.count)
        let text = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return TLSError(code == 0 ? context : "\(context): \(text)")
    }
}

public enum TLSProtocol: Sendable {
    case tls12, tls13
    var openSSLValue: Int32 { switch self { case .tls12: TLS1_2_VERSION; case .tls13: TLS1_3_VERSION } }
}

/// An OpenSSL SSL_CTX. Immutable once built and safe to share between loops (OpenSSL
/// reference-counts it and SSL_new is thread-safe); a reload builds a new one, and sessions
/// that started under the old one keep it until they end.
public final class TLSContext: @unchecked Sendable {
    let context: OpaquePointer

    private init(context: OpaquePointer) { self.context = context }

    /// Plaintext bytes per TLS record sent to clients: PostgreSQL's send buffer size.
    public static let clientRecordPlaintextLimit = 8192
    deinit { SSL_CTX_free(context) }

    /// The client-facing context, configured as PostgreSQL's be-secure-openssl.c does:
    /// no compression, no renegotiation, no session cache and no session tickets, server cipher
    /// preference.
    /// With `caFile` a client certificate is requested and, if presented, must verify (ssl_ca_file).
    public static func server(
        certificateFile: String,
        keyFile: String,
        caFile: String?,
        requireClientCertificate: Bool = false,
        minimumProtocol: TLSProtocol = .tls12,
        maximumProtocol: TLSProtocol? = nil,
        ciphers: String = "HIGH:MEDIUM:+3DES:!aNULL",
        ciphersuites: String? = nil
    ) throws(TLSError) -> TLSContext {
        guard let ctx = SSL_CTX_new(TLS_server_method()) else { throw .openSSL("could not create TLS context") }
        let tls = TLSContext(context: ctx)
        _ = pc_ssl_ctx_set_modes(ctx)
        pc_ssl_ctx_set_read_ahead(ctx)
        pc_ssl_ctx_set_hardening_options(ctx, 1)
        _ = pc_ssl_ctx_disable_session_cache(ctx)
        _ = pc_ssl_ctx_set_session_id_context(ctx)
        guard pc_ssl_ctx_set_min_proto(ctx, minimumProtocol.openSSLValue) == 1 else { throw .openSSL("could not set minimum TLS protocol") }
        if let maximumProtocol {
            guard pc_ssl_ctx_set_max_proto(ctx, maximumProtocol.openSSLValue) == 1 else { throw .openSSL("could not set maximum TLS protocol") }
        }
        guard SSL_CTX_set_cipher_list(ctx, ciphers) == 1 else { throw .openSSL("could not set cipher list \"\(ciphers)\"") }
        if let ciphersuites, !ciphersuites.isEmpty {
            guard SSL_CTX_set_ciphersuites(ctx, ciphersuites) == 1 else { throw .openSSL("could not set TLS 1.3 cipher suites \"\(ciphersuites)\"") }
        }
        guard SSL_CTX_use_certificate_chain_file(ctx, certificateFile) == 1 else {
            throw .openSSL("could not load server certificate file \"\(certificateFile)\"")
        }
        try checkPrivateKeyPermissions(keyFile)
        guard SSL_CTX_use_PrivateKey_file(ctx, keyFile, SSL_FILETYPE_PEM) == 1 else {
            throw .openSSL("could not load private key file \"\(keyFile)\"")
        }
        guard SSL_CTX_check_private_key(ctx) == 1 else { throw .openSSL("private key file \"\(keyFile)\" does not match the certificate") }
        pc_ssl_ctx_use_postgresql_alpn(ctx)
        // PostgreSQL hands OpenSSL at most its 8 KiB send buffer per SSL_write
        // (src/backend/libpq/pqcomm.c, PQ_SEND_BUFFER_SIZE), so its records never carry more
        // than 8 KiB. Clients are written against that: libpq-based asynchronous clients can be
        // left with decrypted bytes inside OpenSSL that poll() never reports when a 16 KiB
        // record arrives. Records to clients are shaped the same way.
        guard pc_ssl_ctx_set_max_send_fragment(ctx, Self.clientRecordPlaintextLimit) == 1 else {
            throw .openSSL("could not set the TLS record size")
        }
        if let caFile, !caFile.isEmpty {
            guard SSL_CTX_load_verify_locations(ctx, caFile, nil) == 1 else { throw .openSSL("could not load root certificate file \"\(caFile)\"") }
            guard let names = SSL_load_client_CA_file(caFile) else { throw .openSSL("could not load root certificate file \"\(caFile)\"") }
            SSL_CTX_set_client_CA_list(ctx, names)
            var mode = SSL_VERIFY_PEER | SSL_VERIFY_CLIENT_ONCE
            if requireClientCertificate { mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT }
            SSL_CTX_set_verify(ctx, mode, nil)
        }
        return tls
    }

    /// The upstream-facing context for one database entry (libpq's sslmode semantics):
    /// `verifyPeer` for verify-ca/verify-full, and for `require` when a root certificate is given
    /// (libpq then verifies like verify-ca). Host name checks are per connection.
    public static func client(
        rootCertificateFile: String?,
        verifyPeer: Bool,
        certificateFile: String? = nil,
        keyFile: String? = nil
    ) throws(TLSError) -> TLSContext {
        guard let ctx = SSL_CTX_new(TLS_client_method()) else { throw .openSSL("could not create TLS context") }
        let tls = TLSContext(context: ctx)
        _ = pc_ssl_ctx_set_modes(ctx)
        pc_ssl_ctx_set_read_ahead(ctx)
        pc_ssl_ctx_set_hardening_options(ctx, 0)
        // libpq's default ssl_min_protocol_version is TLSv1.2.
        guard pc_ssl_ctx_set_min_proto(ctx, TLS1_2_VERSION) == 1 else { throw .openSSL("could not set minimum TLS protocol") }
        if let rootCertificateFile, !rootCertificateFile.isEmpty {
            guard SSL_CTX_load_verify_locations(ctx, rootCertificateFile, nil) == 1 else {
                throw .openSSL("could not read root certificate file \"\(rootCertificateFile)\"")
            }
        } else if verifyPeer {
            throw TLSError("certificate verification requires a root certificate file (sslrootcert)")
        }
        SSL_CTX_set_verify(ctx, verifyPeer ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, nil)
        if let certificateFile, !certificateFile.isEmpty {
            guard SSL_CTX_use_certificate_chain_file(ctx, certificateFile) == 1 else {
                throw .openSSL("could not load client certificate file \"\(certificateFile)\"")
            }
            let key = keyFile ?? ""
            try checkPrivateKeyPermissions(key)
            guard SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) == 1 else {
                throw .openSSL("could not load private key file \"\(key)\"")
            }
        }
        return tls
    }

    /// As PostgreSQL and libpq: a private key readable by group or others is refused
    /// (0640 is allowed when owned by root, for distributions' ssl-cert group).
    static func checkPrivateKeyPermissions(_ path: String) throws(TLSError) {
        var st = stat()
        guard stat(path, &st) == 0 else { throw TLSError("could not access private key file \"\(path)\": \(String(cString: strerror(errno)))") }
        guard (st.st_mode & S_IFMT) == S_IFREG else { throw TLSError("private key file \"\(path)\" is not a regular file") }
        let mode = st.st_mode & 0o777
        let ownedByRoot = st.st_uid == 0
        let tooOpen = ownedByRoot ? (mode & 0o037) != 0 : (mode & 0o077) != 0
        if tooOpen {
            throw TLSError("private key file \"\(path)\" has group or world access; it must be u=rw (0600) or less, or u=rw,g=r (0640) if owned by root")
        }
    }
}
