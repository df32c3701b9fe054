import Session
import Wire
import Auth
import Config
import Policy
import TLS

/// How a client reached us; decides which auth method applies and whether TLS is possible.
public enum ClientTransportKind: Sendable, Equatable {
    case unixSocket
    case tcp(remoteHost: String)
}

/// What the session asks the upstream side for once the client is authenticated.
public struct UpstreamRequest: Sendable {
    public var database: DatabaseTarget
    public var databaseName: String
    public var clientUser: String
    public var serverUser: String
    public var serverPassword: Secret?
    public var mode: IdentityMode
    /// Startup parameters to pass through (user/database/replication removed).
    public var parameters: [StartupParameter]
    /// The pg_hba.conf method and "file:line" of the rule the login matched (for the audit stream).
    public var authMethod: String? = nil
    public var ruleOrigin: String? = nil
    /// What PostgreSQL records as the login's authenticated identity (`authn_id`), and the
    /// pg_ident.conf map that related it to `clientUser` (for the audit stream).
    public var authenticatedIdentity: String? = nil
    public var identMap: String? = nil
}

/// The client side of a session until it is handed to forwarding: SSL/GSS negotiation, the
/// startup packet, authentication and the wait for an upstream connection.
/// Pure: bytes and events in, actions out (PostgreSQL docs 55.2.1 Start-up, 55.2.10 SSL Session Encryption).
public struct ClientStartupMachine {
    public enum Action {
        case none
        case sendBytes(ByteBuffer)
        /// Answer 'S' then start the TLS handshake (server side).
        case sendSSLAcceptAndStartTLS
        case startDirectTLS
        /// Send the bytes (if any), then close the connection.
        case sendAndClose(ByteBuffer)
        /// Close at once: nothing may be sent (e.g. plaintext after SSLRequest).
        case closeSilently(reason: String)
        case forwardCancel(processID: Int32, secretKey: [UInt8])
        case connectUpstream(UpstreamRequest)
        /// Send the bytes (the end of the SASL exchange), then connect upstream.
        case sendBytesThenConnect(ByteBuffer, UpstreamRequest)
        /// Authentication failed: log the failure, then send the bytes (the FATAL) and close,
        /// possibly after a delay (auth_failure_delay).
        case refuseAuthentication(ByteBuffer, AuthenticationFailure)
        /// `password=auth_query`: read the user's verifier from the upstream (off the loop),
        /// then call ``verifierLookedUp(_:)``.
        case lookUpVerifier(user: String, database: String)
        /// A cleartext password to check against a SCRAM verifier: run the derivation off the
        /// loop (PBKDF2, as many iterations as the verifier says), then call
        /// ``keysDerived(_:)``. Client bytes wait meanwhile. `user` is the login's user name
        /// (whom the derivation threads take turns between).
        case deriveKeys(SCRAMKeyDerivation, user: String)
    }

    enum State {
        case awaitingStartup
        case awaitingTLSHandshake
        case authenticatingSCRAM(SCRAMServer, PendingLogin, initialReceived: Bool)
        case authenticatingPassword(PendingLogin, PasswordExchange)
        /// Waiting for an `auth_query` answer; `preamble` is what the client has not been sent yet.
        case awaitingVerifier(PendingLogin, preamble: ByteBuffer)
        /// A cleartext password's keys are being derived (``Action/deriveKeys(_:)``).
        case checkingPassword(PendingLogin, password: String, verifier: SCRAMVerifier)
        case awaitingUpstream(PendingLogin)
        case established
        case closed
    }

    struct PendingLogin {
        var packet: StartupPacket
        var user: String
        var database: String
        var rule: ClientAuthRule
    }

    /// A PasswordMessage exchange (55.2.2 AuthenticationCleartextPassword / MD5Password).
    enum PasswordExchange {
        case md5(salt: [UInt8], storedHash: String)
        case cleartext(ClientPasswordVerifier?)
    }

    /// The configuration, by reference: every session of one configuration generation shares
    /// one copy (an inline copy cost each idle client over a kilobyte).
    private let snapshot: ConfigSnapshot
    public var config: PortcullisConfig { snapshot.value }
    public let transport: ClientTransportKind
    public private(set) var isTLS = false
    /// Our own certificate's tls-server-end-point hash, for SCRAM-SHA-256-PLUS.
    var channelBinding: [UInt8]?
    let mockSeed: [UInt8]
    let md5Salt: [UInt8]
    /// pg_hba.conf / pg_ident.conf in force when the connection arrived.
    public let access: any ClientAccessRules
    /// The client certificate, when one was presented and verified against ssl_ca_file.
    public private(set) var peerCertificate: PeerCertificateSubject?
    /// The operating-system user at the other end of a Unix-domain socket (SO_PEERCRED).
    public let peerUser: String?
    var state: State = .awaitingStartup
    private var answeredGSS = false
    /// An SSLRequest was answered `N`: another one is no SSLRequest any more for PostgreSQL
    /// (ProcessStartupPacket's ssl_done), but a startup packet of version 1234.5679.
    private var answeredSSL = false
    public private(set) var authenticatedUser: String?
    /// The `auth_query` answer once it came: `.some(nil)` means "no verifier" (the mock exchange).
    var lookedUpVerifier: ClientPasswordVerifier??
    /// What the client's own login gives for the upstream login as the same role, for
    /// `password=auth_query` identities without a server password: SCRAM pass-through keys,
    /// or the cleartext password of a `password` line.
    var passThrough: Secret?
    /// Set for a connection on the internal endpoint ([backup] internal_socket_directory):
    /// the only user name it admits, the backup identity.
    public var onlyUser: String?

    public init(config: PortcullisConfig, transport: ClientTransportKind, mockSeed: [UInt8],
                access: (any ClientAccessRules)? = nil, md5Salt: [UInt8] = Crypto.randomBytes(4),
                peerUser: String? = nil) {
        self.init(snapshot: ConfigSnapshot(config), transport: transport, mockSeed: mockSeed, access: access,
                  md5Salt: md5Salt, peerUser: peerUser)
    }

    public init(snapshot: ConfigSnapshot, transport: ClientTransportKind, mockSeed: [UInt8],
                access: (any ClientAccessRules)? = nil, md5Salt: [UInt8] = Crypto.randomBytes(4),
                peerUser: String? = nil) {
        self.snapshot = snapshot
        let config = snapshot.value
        self.peerUser = peerUser
        self.transport = transport
        self.mockSeed = mockSeed
        self.md5Salt = md5Salt
        self.access = access ?? MethodPerTransportRules(config.general)
    }

    public var isEstablished: Bool { if case .established = state { true } else { false } }
    public var isAwaitingUpstream: Bool { if case .awaitingUpstream = state { true } else { false } }
    /// A password check waits for its derivation: the client's next bytes wait in the socket.
    public var isCheckingPassword: Bool { if case .checkingPassword = state { true } else { false } }

    var remoteHostForMessages: String {
        switch transport {
        case .unixSocket: "[local]"
        case .tcp(let host): host
        }
    }

    /// Whether a first byte of 0x16 (a TLS ClientHello) may start PostgreSQL 17 direct TLS.
    public var acceptsDirectTLS: Bool {
        guard case .awaitingStartup = state, !isTLS, case .tcp = transport else { return false }
        return config.tls.mode != .disable && config.tls.directTLS
    }

    public mutating func directTLSDetected() -> Action {
        guard acceptsDirectTLS else { return .closeSilently(reason: "direct TLS connection refused") }
        state = .awaitingTLSHandshake
        return .startDirectTLS
    }

    public mutating func tlsHandshakeCompleted(serverEndPoint: [UInt8]?, direct: Bool, alpnPostgreSQL: Bool,
                                               peerCertificate: PeerCertificateSubject? = nil) -> Action {
        // PostgreSQL 17 requires ALPN on direct TLS so a TLS-speaking attacker cannot use the
        // server as a confused deputy for another protocol.
        if direct && !alpnPostgreSQL {
            state = .closed
            return .closeSilently(reason: "received direct SSL connection request without ALPN protocol negotiation extension")
        }
        isTLS = true
        channelBinding = serverEndPoint
        self.peerCertificate = peerCertificate
        state = .awaitingStartup
        return .none
    }

    /// Bytes from the client before forwarding begins. Consumes what it uses from `buffer`.
    public mutating func bytesReceived(_ buffer: inout ByteBuffer) -> Action {
        switch state {
        case .awaitingStartup:
            return startupBytesReceived(&buffer)
        case .authenticatingSCRAM(var scram, let login, let initialReceived):
            return authenticationBytesReceived(&buffer, scram: &scram, login: login, initial: !initialReceived)
        case .authenticatingPassword(let login, let exchange):
            return passwordBytesReceived(&buffer, login: login, exchange: exchange)
        case .awaitingTLSHandshake, .awaitingVerifier, .checkingPassword, .awaitingUpstream, .established, .closed:
            // Bytes wait in the buffer (pipelined queries go upstream once it is ready).
            return .none
        }
    }

    public mutating func loginTimedOut() -> Action {
        switch state {
        case .established, .closed:
            return .none
        case .awaitingStartup, .awaitingTLSHandshake:
            // PostgreSQL closes silently while waiting for the startup packet.
            state = .closed
            return .closeSilently(reason: "timeout while waiting for the startup packet")
        case .authenticatingSCRAM(_, let login, _), .authenticatingPassword(let login, _), .awaitingVerifier(let login, _),
             .checkingPassword(let login, _, _):
            // A login that never finishes is a failed one (logged, and counted for backoff).
            return refuse(ByteBuffer(), SQLState.protocolViolation, "canceling authentication due to timeout", login: login)
        case .awaitingUpstream:
            state = .closed
            return .sendAndClose(Self.fatal(SQLState.protocolViolation, "canceling authentication due to timeout"))
        }
    }

    /// The upstream session is ready: tell the client it is in, with the server's own parameters,
    /// the real backend PID and our cancel key.
    public mutating func upstreamReady(parameters: [(String, String)], notices: [StartupNotice] = [], processID: Int32,
                                       proxySecretKey: [UInt8]) -> Action {
        guard case .awaitingUpstream(let login) = state else { return .none }
        if (config.identities[login.user]?.mode ?? .readOnly) == .readOnly {
            // Settings the client never sent (role and database defaults, postgresql.conf)
            // decide how the server lexes: checked before the client can send a statement.
            var tripwire = ReadOnlyTripwire()
            if case .breached(let reason) = tripwire.startupParametersReceived(parameters) {
                state = .closed
                var out = ByteBuffer()
                BackendMessage.errorResponse(ReadOnlyTripwire.errorFields(for: reason, identity: login.user)).encode(into: &out)
                return .sendAndClose(out)
            }
        }
        state = .established
        var out = ByteBuffer()
        BackendMessage.authentication(.ok).encode(into: &out)
        var pendingNotices = notices[...]
        for (index, (name, value)) in parameters.enumerated() {
            while let notice = pendingNotices.first, notice.afterParameters <= index {
                BackendMessage.noticeResponse(notice.fields).encode(into: &out)
                pendingNotices.removeFirst()
            }
            BackendMessage.parameterStatus(name: name, value: value).encode(into: &out)
        }
        for notice in pendingNotices { BackendMessage.noticeResponse(notice.fields).encode(into: &out) }
        BackendMessage.backendKeyData(processID: processID, secretKey: proxySecretKey).encode(into: &out)
        BackendMessage.readyForQuery(.idle).encode(into: &out)
        return .sendBytes(out)
    }

    /// The upstream refused or failed: pass its error (the server's own words) or ours.
    ///
    /// One exception keeps PostgreSQL's answer: a login without a password check (trust,
    /// cert, peer) of a user who is no configured identity, whose upstream wants a password
    /// Portcullis does not have. PostgreSQL says `role "x" does not exist` (28000,
    /// miscinit.c InitializeSessionUserId) for a trust login of a role outside its catalog;
    /// [identities] is Portcullis' catalog, and the configuration detail stays in the log.
    public mutating func upstreamFailed(_ fields: ErrorFields) -> Action {
        var fields = fields
        if case .awaitingUpstream(let login) = state, config.identities[login.user] == nil,
           UpstreamStartupMachine.isMissingPassword(fields) {
            fields = .error(sqlState: SQLState.invalidAuthorizationSpecification,
                            message: "role \"\(login.user)\" does not exist", severity: "FATAL")
        }
        state = .closed
        // The client's own authentication succeeded: as PostgreSQL, whose InitPostgres errors
        // come after AuthenticationOk.
        var out = ByteBuffer()
        BackendMessage.authentication(.ok).encode(into: &out)
        BackendMessage.errorResponse(fields).encode(into: &out)
        return .sendAndClose(out)
    }

    // MARK: - Startup packet

    private mutating func startupBytesReceived(_ buffer: inout ByteBuffer) -> Action {
        let message: StartupMessage
        do {
            guard let decoded = try StartupDecoder.decode(&buffer) else { return .none }
            message = decoded
        } catch {
            state = .closed
            switch error {
            case .startupPacketTooSmall, .startupPacketTooLarge, .invalidCancelRequestLength:
                // COMMERROR in ProcessStartupPacket: logged, nothing sent.
                return .closeSilently(reason: error.message)
            case .unsupportedProtocol(let major, _) where major < 3:
                // FrontendProtocol is already the client's, so the FATAL goes out in the old
                // protocol's form: 'E', "FATAL:  <text>\n", NUL (elog.c send_message_to_frontend).
                var out = ByteBuffer(bytes: [UInt8(ascii: "E")])
                out.writeBytes(Array("FATAL:  \(error.message)\n".utf8) + [0])
                return .sendAndClose(out)
            default:
                return .sendAndClose(Self.fatal(error.sqlState, error.message))
            }
        }
        switch message {
        case .sslRequest:
            if isTLS || answeredSSL {
                state = .closed
                return .sendAndClose(Self.fatal(SQLState.featureNotSupported, "unsupported frontend protocol 1234.5679: server supports 3.0 to 3.0"))
            }
            guard case .tcp = transport, config.tls.mode != .disable else {
                answeredSSL = true
                if buffer.readableBytes > 0 {
                    state = .closed
                    return .sendAndClose(ByteBuffer(bytes: [UInt8(ascii: "N")]) + Self.unencryptedDataFatal("received unencrypted data after SSL request"))
                }
                return .sendBytes(ByteBuffer(bytes: [UInt8(ascii: "N")]))
            }
            // CVE-2021-23214: bytes sent before the handshake completes were not protected by
            // TLS and could have been injected by a man in the middle.
            if buffer.readableBytes > 0 {
                state = .closed
                return .closeSilently(reason: "received unencrypted data after SSL request")
            }
            state = .awaitingTLSHandshake
            return .sendSSLAcceptAndStartTLS
        case .gssEncRequest:
            if answeredGSS || isTLS {
                state = .closed
                return .sendAndClose(Self.fatal(SQLState.featureNotSupported, "unsupported frontend protocol 1234.5680: server supports 3.0 to 3.0"))
            }
            answeredGSS = true
            if buffer.readableBytes > 0 {
                state = .closed
                return .sendAndClose(ByteBuffer(bytes: [UInt8(ascii: "N")])
                                     + Self.unencryptedDataFatal("received unencrypted data after GSSAPI encryption request"))
            }
            return .sendBytes(ByteBuffer(bytes: [UInt8(ascii: "N")]))
        case .cancelRequest(let processID, let secretKey):
            state = .closed
            return .forwardCancel(processID: processID, secretKey: secretKey)
        case .startup(let packet):
            return startupPacketReceived(packet)
        }
    }

    private mutating func startupPacketReceived(_ packet: StartupPacket) -> Action {
        var preamble = ByteBuffer()
        if packet.protocolMinor > 0 || !packet.unrecognizedProtocolOptions.isEmpty {
            // PostgreSQL answers a newer minor version or unknown _pq_ options with
            // NegotiateProtocolVersion and carries on with 3.0 (55.2.1). PostgreSQL 15 puts its
            // PG_PROTOCOL_LATEST there, the whole version 3.0 (SendNegotiateProtocolVersion).
            BackendMessage.negotiateProtocolVersion(newestMinorVersion: 0x0003_0000, unrecognizedOptions: packet.unrecognizedProtocolOptions).encode(into: &preamble)
        }
        guard let user = packet.user, !user.isEmpty else {
            state = .closed
            return .sendAndClose(preamble + Self.fatal(SQLState.invalidAuthorizationSpecification, "no PostgreSQL user name specified in startup packet"))
        }
        let database = packet.database ?? user
        if let replication = packet["replication"] {
            // ProcessStartupPacket: "database" or a boolean (parse_bool), else FATAL.
            guard replication == "database" || PostgresBool.parse(replication) != nil else {
                state = .closed
                return .sendAndClose(Self.fatal(SQLState.invalidParameterValue, "invalid value for parameter \"replication\": \"\(replication)\"",
                                                hint: "Valid values are: \"false\", 0, \"true\", 1, \"database\"."))
            }
            if replication == "database" || PostgresBool.parse(replication) == true {
                state = .closed
                return .sendAndClose(preamble + Self.fatal(SQLState.featureNotSupported, "replication connections are not supported by this proxy"))
            }
        }
        // The internal endpoint admits the backup identity only. Anyone else gets what
        // PostgreSQL answers when no pg_hba.conf line matches (hba.c: implicit reject), before
        // any authentication method runs — also under local_auth_method = trust.
        if let onlyUser, user != onlyUser {
            return refuse(preamble, SQLState.invalidAuthorizationSpecification,
                          "no pg_hba.conf entry for host \"\(remoteHostForMessages)\", user \"\(user)\", database \"\(database)\", \(encryptionPhrase)",
                          user: user, database: database, rule: nil)
        }
        if case .tcp = transport, !isTLS, config.tls.mode == .require {
            return refuse(preamble, SQLState.invalidAuthorizationSpecification,
                          "no pg_hba.conf entry for host \"\(remoteHostForMessages)\", user \"\(user)\", database \"\(database)\", no encryption",
                          user: user, database: database, rule: nil)
        }
        return authenticate(packet: packet, user: user, database: database, preamble: preamble)
    }

    var encryptionPhrase: String {
        isTLS ? "SSL encryption" : "no encryption"
    }

    // MARK: - SASL exchange (55.3.1 SCRAM-SHA-256 authentication)

    private mutating func authenticationBytesReceived(_ buffer: inout ByteBuffer, scram: inout SCRAMServer, login: PendingLogin, initial: Bool) -> Action {
        let decoder = FrameDecoder(maxMessageLength: 10_000)
        let frame: MessageFrame
        do {
            guard let f = try decoder.peekFrame(in: buffer) else { return .none }
            frame = f
        } catch {
            return refuse(ByteBuffer(), error.sqlState, error.message, login: login)
        }
        guard buffer.readableBytes >= frame.totalLength else { return .none }
        guard frame.type == UInt8(ascii: "p") else {
            let message = "expected SASL response, got message type \(frame.type)"
            if frame.type == UInt8(ascii: "X") {
                // As for a password (passwordBytesReceived): PostgreSQL's answer, no failed login.
                state = .closed
                return .sendAndClose(Self.fatal(SQLState.protocolViolation, message))
            }
            return refuse(ByteBuffer(), SQLState.protocolViolation, message, login: login)
        }
        let action: SCRAMServerAction
        do {
            if initial {
                let (mechanism, data) = try FrontendMessage.decodeSASLInitialResponse(frame: frame, from: &buffer)
                action = scram.initialResponseReceived(mechanism: mechanism, data: data)
            } else {
                let data = try FrontendMessage.decodeSASLResponse(frame: frame, from: &buffer)
                action = scram.responseReceived(data)
            }
        } catch {
            return refuse(ByteBuffer(), error.sqlState, error.message, login: login)
        }
        switch action {
        case .sendContinue(let data):
            state = .authenticatingSCRAM(scram, login, initialReceived: true)
            var out = ByteBuffer()
            BackendMessage.authentication(.saslContinue(data)).encode(into: &out)
            return .sendBytes(out)
        case .sendFinal(let data):
            if let failure = certificateCheckAfterPassword(login) { return failure }
            if lookedUpVerifier != nil, let keys = scram.passThroughKeys {
                passThrough = Secret(scramClientKey: keys.clientKey, serverKey: keys.serverKey)
            }
            var out = ByteBuffer()
            BackendMessage.authentication(.saslFinal(data)).encode(into: &out)
            return authenticated(login, preamble: out)
        case .fail(let failure):
            // With PostgreSQL's errdetail ("Nonce does not match.", auth-scram.c).
            return refuse(ByteBuffer(), failure.sqlState, failure.message, detail: failure.detail, login: login)
        }
    }

    // MARK: - After authentication

    /// The identity already has as many sessions as its `max_connections` (or
    /// `max_identity_connections`) allows: PostgreSQL's role CONNECTION LIMIT refusal, after
    /// AuthenticationOk (postinit.c, InitializeSessionUserId).
    public mutating func connectionLimitReached() -> Action {
        guard case .awaitingUpstream(let login) = state else { return .none }
        return refuseAfterAuthentication(ByteBuffer(), SQLState.tooManyConnections,
                                         "too many connections for role \"\(login.user)\"", hint: nil, login: login)
    }

    mutating func authenticated(_ login: PendingLogin, preamble: ByteBuffer) -> Action {
        authenticatedUser = login.user
        guard let server = ServerLogin.resolve(config, database: login.database, user: login.user, passThrough: passThrough) else {
            return refuseAfterAuthentication(preamble, SQLState.undefinedDatabase, "database \"\(login.database)\" does not exist",
                                             hint: nil, login: login)
        }
        let identity = config.identities[login.user]
        var parameters = login.packet.parameters.filter { p in
            p.name != "user" && p.name != "database" && p.name != "replication" && !p.name.hasPrefix("_pq_.")
        }
        let mode = identity?.mode ?? .readOnly
        if mode == .readOnly {
            // No way out of read-only mode through the startup packet either: every parameter
            // and every `options` switch is judged by the SET rules, and the accepted settings
            // go upstream as separate parameters (StartupSettingsPolicy).
            switch StartupSettingsPolicy.judge(parameters.map { ($0.name, $0.value) }) {
            case .refused(let refusal):
                return refuseAfterAuthentication(preamble, refusal.sqlState, refusal.message,
                                                 hint: refusal.byPolicy ? "\"\(login.user)\" is a read-only identity." : refusal.hint,
                                                 login: login)
            case .accepted(let accepted):
                parameters = StartupSettingsPolicy.withPinnedSettings(accepted).map { StartupParameter(name: $0.name, value: $0.value) }
            }
        }
        if let applicationName = server.target.applicationName, !parameters.contains(where: { $0.name == "application_name" }) {
            parameters.append(StartupParameter(name: "application_name", value: applicationName))
        }
        state = .awaitingUpstream(login)
        let request = UpstreamRequest(
            database: server.target, databaseName: login.database, clientUser: login.user,
            serverUser: server.serverUser, serverPassword: server.serverPassword, mode: mode, parameters: parameters,
            authMethod: AuthenticationFailure.methodName(login.rule.method), ruleOrigin: login.rule.origin,
            authenticatedIdentity: authenticatedIdentity(login), identMap: login.rule.mapName)
        if preamble.readableBytes > 0 {
            return .sendBytesThenConnect(preamble, request)
        }
        return .connectUpstream(request)
    }

    /// The identity PostgreSQL's `set_authn_id` records for the method (auth.c): the
    /// certificate's CN or DN (`clientname`) for `cert`, the peer's operating-system user for
    /// `peer`, the user name for password methods, none for `trust`.
    func authenticatedIdentity(_ login: PendingLogin) -> String? {
        switch login.rule.method {
        case .cert:
            guard let peerCertificate else { return nil }
            return login.rule.certificateName == .commonName ? peerCertificate.commonName : peerCertificate.distinguishedName
        case .peer: return peerUser
        case .scramSHA256, .md5, .password: return login.user
        case .trust, .reject: return nil
        }
    }

    /// ProcessStartupPacket's answer to bytes that came with an SSLRequest or GSSENCRequest
    /// before its answer (CVE-2021-23214): they could have been injected.
    static func unencryptedDataFatal(_ message: String) -> ByteBuffer {
        var out = ByteBuffer()
        BackendMessage.errorResponse(.error(sqlState: SQLState.protocolViolation, message: message,
                                            detail: "This could be either a client-software bug or evidence of an attempted man-in-the-middle attack.",
                                            severity: "FATAL")).encode(into: &out)
        return out
    }

    static func fatal(_ sqlState: String, _ message: String, detail: String? = nil, hint: String? = nil) -> ByteBuffer {
        var out = ByteBuffer()
        BackendMessage.errorResponse(.error(sqlState: sqlState, message: message, detail: detail, hint: hint, severity: "FATAL")).encode(into: &out)
        return out
    }
}
