import Wire
import Auth
import Config
import TLS

/// Client authentication after the startup packet: the pg_hba.conf rule picks the method
/// (PostgreSQL docs 21.1, 21.3–21.12; src/backend/libpq/auth.c ClientAuthentication), and
/// failures carry PostgreSQL's own messages and SQLSTATEs, never saying whether a user exists.
extension ClientStartupMachine {
    mutating func authenticate(packet: StartupPacket, user: String, database: String, preamble: ByteBuffer) -> Action {
        let attempt = ClientAttempt(isLocal: transport == .unixSocket, isTLS: isTLS, remoteAddress: remoteAddress,
                                    database: database, user: user, isReplication: false)
        guard let rule = access.rule(for: attempt) else {
            return refuse(preamble, SQLState.invalidAuthorizationSpecification,
                          "no pg_hba.conf entry for host \"\(remoteHostForMessages)\", user \"\(user)\", database \"\(database)\", \(encryptionPhrase)",
                          user: user, database: database, rule: nil)
        }
        let login = PendingLogin(packet: packet, user: user, database: database, rule: rule)
        // auth.c checks clientcert before the method runs.
        if rule.clientCertificate != .none && peerCertificate == nil {
            return refuse(preamble, SQLState.invalidAuthorizationSpecification, "connection requires a valid client certificate", login: login)
        }
        var verifier = config.identities[user]?.password
        if config.identities[user]?.passwordFromAuthQuery == true, rule.method.checksPassword {
            guard let answer = lookedUpVerifier else {
                state = .awaitingVerifier(login, preamble: preamble)
                return .lookUpVerifier(user: user, database: database)
            }
            verifier = answer
        }
        switch rule.method {
        case .trust:
            if let failure = certificateCheckAfterPassword(login, preamble: preamble) { return failure }
            return authenticated(login, preamble: preamble)
        case .reject:
            return refuse(preamble, SQLState.invalidAuthorizationSpecification,
                          "pg_hba.conf rejects connection for host \"\(remoteHostForMessages)\", user \"\(user)\", database \"\(database)\", \(encryptionPhrase)", login: login)
        case .peer:
            // auth.c auth_peer: the Unix socket's peer user is the system user name.
            guard let peerUser, transport == .unixSocket else {
                return refuse(preamble, SQLState.invalidAuthorizationSpecification,
                              "Peer authentication failed for user \"\(user)\"", login: login)
            }
            let allowed = login.rule.mapName.map { access.mapAllows(map: $0, systemUser: peerUser, databaseUser: user) }
                ?? (peerUser == user)
            guard allowed else {
                return refuse(preamble, SQLState.invalidAuthorizationSpecification,
                              "Peer authentication failed for user \"\(user)\"", login: login)
            }
            return authenticated(login, preamble: preamble)
        case .cert:
            guard certificateNameMatches(login) else {
                return refuse(preamble, SQLState.invalidAuthorizationSpecification,
                              "certificate authentication failed for user \"\(user)\"", login: login)
            }
            return authenticated(login, preamble: preamble)
        case .md5:
            // auth.c CheckPWChallengeAuth: an MD5 challenge only for a stored MD5 secret;
            // a SCRAM secret (or none: the mock) gets SCRAM even on an md5 line.
            if case .md5(let storedHash) = verifier {
                var out = preamble
                BackendMessage.authentication(.md5Password(salt: md5Salt)).encode(into: &out)
                state = .authenticatingPassword(login, .md5(salt: md5Salt, storedHash: storedHash))
                return .sendBytes(out)
            }
            return startSCRAM(login, verifier: verifier, preamble: preamble)
        case .scramSHA256:
            return startSCRAM(login, verifier: verifier, preamble: preamble)
        case .password:
            // As PostgreSQL on every transport, plaintext TCP included (auth.c CheckPasswordAuth):
            // a line that allows it is warned about with file:line at load and by check-config
            // (HbaRules.cleartextPasswordWarnings), and the sample pg_hba.conf has none.
            var out = preamble
            BackendMessage.authentication(.cleartextPassword).encode(into: &out)
            state = .authenticatingPassword(login, .cleartext(verifier))
            return .sendBytes(out)
        }
    }

    /// The `auth_query` answer (nil: no such role, no password, or the lookup failed): the
    /// login continues as it would have with that verifier in the configuration file.
    public mutating func verifierLookedUp(_ verifier: ClientPasswordVerifier?) -> Action {
        guard case .awaitingVerifier(let login, let preamble) = state else { return .none }
        lookedUpVerifier = .some(verifier)
        return authenticate(packet: login.packet, user: login.user, database: login.database, preamble: preamble)
    }

    private mutating func startSCRAM(_ login: PendingLogin, verifier: ClientPasswordVerifier?, preamble: ByteBuffer) -> Action {
        var scramVerifier: SCRAMVerifier?
        if case .scramSHA256(let iterations, let salt, let storedKey, let serverKey) = verifier {
            scramVerifier = SCRAMVerifier(iterations: iterations, salt: salt, storedKey: storedKey, serverKey: serverKey)
        }
        // Unknown users (and users without a SCRAM secret) get a mock exchange that fails
        // only at the end, so the reply does not reveal whether the user exists.
        let scram = SCRAMServer(verifier: scramVerifier, mockSeed: mockSeed, username: login.user,
                                channelBinding: isTLS ? channelBinding : nil)
        var out = preamble
        BackendMessage.authentication(.sasl(mechanisms: scram.mechanisms)).encode(into: &out)
        state = .authenticatingSCRAM(scram, login, initialReceived: false)
        return .sendBytes(out)
    }

    /// PasswordMessage for md5 or password authentication.
    mutating func passwordBytesReceived(_ buffer: inout ByteBuffer, login: PendingLogin, exchange: PasswordExchange) -> Action {
        let decoder = FrameDecoder(maxMessageLength: 10_000)
        let frame: MessageFrame
        do {
            guard let f = try decoder.peekFrame(in: buffer), buffer.readableBytes >= f.totalLength else { return .none }
            frame = f
        } catch {
            return refuse(ByteBuffer(), error.sqlState, error.message, login: login)
        }
        guard frame.type == UInt8(ascii: "p") else {
            let message = "expected password response, got message type \(frame.type)"
            if frame.type == UInt8(ascii: "X") {
                // libpq's way of giving up to ask for a password: answered as PostgreSQL
                // answers it, but no failed login (no backoff, no audit event).
                state = .closed
                return .sendAndClose(Self.fatal(SQLState.protocolViolation, message))
            }
            return refuse(ByteBuffer(), SQLState.protocolViolation, message, login: login)
        }
        let response: String
        do {
            response = try FrontendMessage.decodePasswordMessage(frame: frame, from: &buffer)
        } catch {
            return refuse(ByteBuffer(), SQLState.protocolViolation, "invalid password packet size", login: login)
        }
        // auth.c recv_password_packet: libpq never sends one, other clients might.
        guard !response.isEmpty else {
            return refuse(ByteBuffer(), SQLState.invalidPassword, "empty password returned by client", login: login)
        }
        switch exchange {
        case .md5(let salt, let storedHash):
            let accepted = MD5Password.verify(clientResponse: response, storedHash: storedHash, salt: salt)
            return passwordChecked(accepted, login: login, cleartext: nil)
        case .cleartext(let verifier):
            switch Self.cleartextCheck(response, user: login.user, verifier: verifier) {
            case .decided(let accepted):
                return passwordChecked(accepted, login: login, cleartext: response)
            case .derive(let derivation, let scram):
                state = .checkingPassword(login, password: response, verifier: scram)
                return .deriveKeys(derivation, user: login.user)
            }
        }
    }

    /// The keys ``Action/deriveKeys(_:user:)`` asked for: the password check ends. nil: the
    /// derivation threads had no room (``KeyDerivationPool``); the client is turned away as
    /// PostgreSQL turns one away when it is full (53300), which is no failed login.
    public mutating func keysDerived(_ keys: SCRAMKeys?) -> Action {
        guard case .checkingPassword(let login, let password, let verifier) = state else { return .none }
        guard let keys else {
            state = .closed
            return .sendAndClose(Self.fatal(SQLState.tooManyConnections, "sorry, too many clients already"))
        }
        return passwordChecked(verifier.matches(keys), login: login, cleartext: password)
    }

    private mutating func passwordChecked(_ accepted: Bool, login: PendingLogin, cleartext: String?) -> Action {
        guard accepted else {
            return refuse(ByteBuffer(), SQLState.invalidPassword, "password authentication failed for user \"\(login.user)\"", login: login)
        }
        if let failure = certificateCheckAfterPassword(login) { return failure }
        if lookedUpVerifier != nil, let cleartext { passThrough = Secret(cleartext) }
        return authenticated(login, preamble: ByteBuffer())
    }

    enum CleartextCheck {
        case decided(Bool)
        /// A SCRAM verifier: the password's keys need PBKDF2 with its salt and count.
        case derive(SCRAMKeyDerivation, SCRAMVerifier)
    }

    /// auth.c plaintext_password_verify: the password is hashed as the stored secret was.
    /// An MD5 hash is decided here (microseconds); a SCRAM secret needs PBKDF2, which costs
    /// what its iteration count says (crypt.c `plaintext_password_verify` calls
    /// `scram_verify_plain_password`): that runs off the loop.
    static func cleartextCheck(_ password: String, user: String, verifier: ClientPasswordVerifier?) -> CleartextCheck {
        switch verifier {
        case .scramSHA256(let iterations, let salt, let storedKey, let serverKey):
            guard let scram = SCRAMVerifier(iterations: iterations, salt: salt, storedKey: storedKey, serverKey: serverKey) else {
                return .decided(false)
            }
            return .derive(SCRAMKeyDerivation.checking(password: password, against: scram), scram)
        case .md5(let storedHash):
            return .decided(Crypto.constantTimeEquals(Array(MD5Password.hash(user: user, password: password).utf8), Array(storedHash.utf8)))
        case nil:
            return .decided(false)
        }
    }

    /// clientcert=verify-full on a password or trust line: after the method succeeded, the
    /// certificate's name must also match (auth.c: CheckCertAuth after the method, failing
    /// with the method's own message).
    mutating func certificateCheckAfterPassword(_ login: PendingLogin, preamble: ByteBuffer = ByteBuffer()) -> Action? {
        guard login.rule.clientCertificate == .verifyFull, login.rule.method != .cert else { return nil }
        if certificateNameMatches(login) { return nil }
        // auth.c auth_failed(): the text of the line's method; only password methods carry 28P01.
        switch login.rule.method {
        case .scramSHA256, .md5, .password:
            return refuse(preamble, SQLState.invalidPassword, "password authentication failed for user \"\(login.user)\"", login: login)
        case .trust:
            return refuse(preamble, SQLState.invalidAuthorizationSpecification,
                          "\"trust\" authentication failed for user \"\(login.user)\"", login: login)
        case .reject, .cert, .peer:
            // reject never authenticates, cert checks its certificate itself and peer lines
            // cannot carry clientcert (local only): kept exhaustive with PostgreSQL's default text.
            return refuse(preamble, SQLState.invalidAuthorizationSpecification,
                          "authentication failed for user \"\(login.user)\": invalid authentication method", login: login)
        }
    }

    /// The certificate's CN (or DN) is the system user; with `map=` pg_ident.conf decides,
    /// without it the name must equal the requested user (hba.c check_usermap).
    func certificateNameMatches(_ login: PendingLogin) -> Bool {
        guard let peerCertificate else { return false }
        let systemUser = login.rule.certificateName == .commonName
            ? peerCertificate.commonName : peerCertificate.distinguishedName
        guard !systemUser.isEmpty else { return false }
        if let map = login.rule.mapName {
            return access.mapAllows(map: map, systemUser: systemUser, databaseUser: login.user)
        }
        return systemUser == login.user
    }

    mutating func refuse(_ preamble: ByteBuffer, _ sqlState: String, _ message: String, detail: String? = nil,
                         login: PendingLogin) -> Action {
        refuse(preamble, sqlState, message, user: login.user, database: login.database, rule: login.rule, detail: detail)
    }

    /// Ends the login with a FATAL error; the shell logs the failure (without anything the
    /// client sent as a secret) and may delay the answer (auth_failure_delay).
    mutating func refuse(_ preamble: ByteBuffer, _ sqlState: String, _ message: String,
                         user: String, database: String, rule: ClientAuthRule?,
                         detail: String? = nil, hint: String? = nil, afterAuthentication: Bool = false) -> Action {
        state = .closed
        let failure = AuthenticationFailure(
            remoteHost: remoteHostForMessages, user: user, database: database,
            method: rule.map { AuthenticationFailure.methodName($0.method) }, ruleOrigin: rule?.origin,
            sqlState: sqlState, message: message, afterAuthentication: afterAuthentication)
        return .refuseAuthentication(preamble + Self.fatal(sqlState, message, detail: detail, hint: hint), failure)
    }

    /// Ends an authenticated login with a FATAL error for what it asked for; logged and
    /// audited as a refused login, with no auth_failure_delay.
    /// As PostgreSQL, whose InitPostgres errors follow AuthenticationOk.
    mutating func refuseAfterAuthentication(_ preamble: ByteBuffer, _ sqlState: String, _ message: String, hint: String?,
                                            login: PendingLogin) -> Action {
        var preamble = preamble
        BackendMessage.authentication(.ok).encode(into: &preamble)
        return refuse(preamble, sqlState, message, user: login.user, database: login.database, rule: login.rule,
                      hint: hint, afterAuthentication: true)
    }

    var remoteAddress: String? {
        switch transport {
        case .unixSocket: nil
        case .tcp(let host): host
        }
    }
}
