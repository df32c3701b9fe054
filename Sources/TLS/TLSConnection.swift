import CPortcullisShims
import Glibc

/// The outcome of a non-blocking TLS operation. A read may need the socket to become writable
/// (and a write readable) during a key update, so the wanted direction is part of the result.
public enum TLSIOResult<Value> {
    case done(Value)
    case wantRead
    case wantWrite
    /// The peer closed the connection (close_notify or EOF).
    case closed
    case failed(TLSError)
}

/// Subject of a verified client certificate, as PostgreSQL's `clientname=CN|DN` sees it.
public struct PeerCertificateSubject: Sendable, Equatable {
    public var commonName: String
    /// RFC 2253 form, as PostgreSQL 16+'s `clientname=DN`.
    public var distinguishedName: String

    public init(commonName: String, distinguishedName: String) {
        self.commonName = commonName
        self.distinguishedName = distinguishedName
    }
}

/// One TLS session over a non-blocking socket (OpenSSL reads and writes the descriptor itself).
public final class TLSConnection {
    let ssl: OpaquePointer
    public let isServer: Bool

    /// Server side: a client connection whose handshake we accept.
    /// `direct`: PostgreSQL 17 direct TLS, where the ClientHello must offer ALPN "postgresql".
    public init(serverContext: TLSContext, fd: Int32, direct: Bool = false) throws(TLSError) {
        guard let ssl = SSL_new(serverContext.context) else { throw .openSSL("could not create TLS session") }
        self.ssl = ssl
        isServer = true
        if direct { _ = pc_ssl_mark_direct(ssl) }
        guard SSL_set_fd(ssl, fd) == 1 else { throw .openSSL("could not attach socket to TLS session") }
        SSL_set_accept_state(ssl)
    }

    /// Client side toward an upstream server. `expectedHost` enables verify-full's host name (or
    /// IP address) check; `serverName` is sent as SNI when it is a host name.
    public init(clientContext: TLSContext, fd: Int32, serverName: String?, expectedHost: String?) throws(TLSError) {
        guard let ssl = SSL_new(clientContext.context) else { throw .openSSL("could not create TLS session") }
        self.ssl = ssl
        isServer = false
        guard SSL_set_fd(ssl, fd) == 1 else { throw .openSSL("could not attach socket to TLS session") }
        if let serverName, !serverName.isEmpty, SocketAddressLiteral.isIPLiteral(serverName) == false {
            guard pc_ssl_set_sni(ssl, serverName) == 1 else { throw .openSSL("could not set SSL Server Name Indication (SNI)") }
        }
        if let expectedHost {
            if SocketAddressLiteral.isIPLiteral(expectedHost) {
                guard pc_ssl_set_expected_ip(ssl, expectedHost) == 1 else { throw .openSSL("could not set expected server address") }
            } else {
                guard SSL_set1_host(ssl, expectedHost) == 1 else { throw .openSSL("could not set expected server host name") }
            }
        }
        SSL_set_connect_state(ssl)
    }

    deinit { SSL_free(ssl) }

    public func handshake() -> TLSIOResult<Void> {
        ERR_clear_error()
        let rc = SSL_do_handshake(ssl)
        if rc == 1 { return .done(()) }
        return classify(rc, operation: "TLS handshake")
    }

    /// SSL_get_error needs the thread's error queue empty before the operation (SSL_get_error(3)).
    /// It nearly always is: ERR_clear_error walks all sixteen slots (about 840 instructions,
    /// 4 % of a relayed transaction), ERR_peek_error only looks, so it clears only when needed.
    @inline(__always)
    private func emptyErrorQueue() {
        if ERR_peek_error() != 0 { ERR_clear_error() }
    }

    public func read(into buffer: UnsafeMutableRawBufferPointer) -> TLSIOResult<Int> {
        emptyErrorQueue()
        var count = 0
        let rc = SSL_read_ex(ssl, buffer.baseAddress, buffer.count, &count)
        if rc == 1 { return .done(count) }
        return classify(rc, operation: "TLS read")
    }

    public func write(from buffer: UnsafeRawBufferPointer) -> TLSIOResult<Int> {
        emptyErrorQueue()
        var count = 0
        let rc = SSL_write_ex(ssl, buffer.baseAddress, buffer.count, &count)
        if rc == 1 { return .done(count) }
        return classify(rc, operation: "TLS write")
    }

    /// Bytes held inside OpenSSL, decrypted or (with read-ahead) still raw: epoll cannot see
    /// them, so a reader that stops early must come back for them without waiting for the socket.
    public var hasPendingData: Bool { SSL_has_pending(ssl) == 1 }

    /// TLS 1.3 KeyUpdate messages the peer has sent so far.
    public var keyUpdatesReceived: UInt64 { pc_ssl_key_updates_received(ssl) }

    /// Record buffers kept between records (a busy connection), or given back now and after
    /// every record from here on (an idle one: SSL_MODE_RELEASE_BUFFERS, about 34 KiB less).
    /// Freeing and allocating them for every record costs a busy connection two malloc/free
    /// pairs of about 17 KiB per message it relays.
    public var keepsBuffers: Bool = false {
        didSet { if keepsBuffers != oldValue { pc_ssl_keep_buffers(ssl, keepsBuffers ? 1 : 0) } }
    }

    /// Best-effort close_notify; never blocks.
    public func shutdown() {
        ERR_clear_error()
        _ = SSL_shutdown(ssl)
        ERR_clear_error()
    }

    /// 1 when the client negotiated ALPN "postgresql" (required for direct TLS).
    public var negotiatedPostgreSQLALPN: Bool { pc_ssl_alpn_is_postgresql(ssl) == 1 }

    public var protocolVersion: String { String(cString: SSL_get_version(ssl)) }
    public var cipherName: String {
        guard let cipher = SSL_get_current_cipher(ssl) else { return "" }
        return String(cString: SSL_CIPHER_get_name(cipher))
    }

    /// The peer's certificate subject, only when a certificate was presented and verified.
    public var verifiedPeerSubject: PeerCertificateSubject? {
        guard let cert = SSL_get1_peer_certificate(ssl) else { return nil }
        defer { X509_free(cert) }
        guard SSL_get_verify_result(ssl) == Int(X509_V_OK) else { return nil }
        var cn = [CChar](repeating: 0, count: 256)
        var dn = [CChar](repeating: 0, count: 1024)
        guard pc_x509_subject(cert, &cn, cn.count, &dn, dn.count) == 0 else { return nil }
        return PeerCertificateSubject(commonName: Self.string(cn), distinguishedName: Self.string(dn))
    }

    /// tls-server-end-point channel binding data (RFC 5929) for SCRAM-SHA-256-PLUS: the hash of
    /// the server's certificate — the peer's on the client side, our own on the server side.
    public var serverEndPointHash: [UInt8]? {
        var out = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
        var length: UInt32 = 0
        guard pc_tls_server_end_point(ssl, isServer ? 0 : 1, &out, &length) == 0 else { return nil }
        return Array(out.prefix(Int(length)))
    }

    /// Why certificate verification failed, in OpenSSL's words (for libpq-like messages).
    public var verifyFailureReason: String? {
        let result = SSL_get_verify_result(ssl)
        guard result != Int(X509_V_OK) else { return nil }
        return String(cString: X509_verify_cert_error_string(result))
    }

    private func classify<T>(_ rc: Int32, operation: String) -> TLSIOResult<T> {
        let code = SSL_get_error(ssl, rc)
        switch code {
        case SSL_ERROR_WANT_READ: return .wantRead
        case SSL_ERROR_WANT_WRITE: return .wantWrite
        case SSL_ERROR_ZERO_RETURN: return .closed
        case SSL_ERROR_SYSCALL:
            let err = errno
            if ERR_peek_error() == 0 && (err == 0 || err == ECONNRESET || err == EPIPE) { return .closed }
            if ERR_peek_error() == 0 { return .failed(TLSError("\(operation) failed: \(String(cString: strerror(err)))")) }
            return .failed(.openSSL("\(operation) failed"))
        default:
            if let reason = verifyFailureReason, code == SSL_ERROR_SSL, !isServer {
                ERR_clear_error()
                return .failed(TLSError("certificate verification failed: \(reason)"))
            }
            return .failed(.openSSL("\(operation) failed"))
        }
    }

    private static func string(_ chars: [CChar]) -> String {
        String(decoding: chars.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

enum SocketAddressLiteral {
    static func isIPLiteral(_ host: String) -> Bool {
        var v4 = in_addr()
        var v6 = in6_addr()
        return inet_pton(AF_INET, host, &v4) == 1 || inet_pton(AF_INET6, host, &v6) == 1
    }
}
