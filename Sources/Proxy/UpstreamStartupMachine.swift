import Wire
import Auth
import Config

/// The upstream side of a new server connection, as libpq would drive it: SSL negotiation under
/// the database entry's sslmode, the startup packet, authentication, then the parameter
/// statuses and BackendKeyData up to the first ReadyForQuery. Also sends cancel requests.
/// Pure (PostgreSQL docs 55.2.1 Start-up, 34.19 SSL Support, 55.3 SASL Authentication).
public struct UpstreamStartupMachine {
    public enum Purpose: Sendable {
        case session(user: String, password: Secret?, database: String, parameters: [StartupParameter])
        case cancel(processID: Int32, secretKey: [UInt8])
    }

    public enum Action {
        case none
        case send(ByteBuffer)
        /// Begin the client-side TLS handshake over the socket.
        case startTLS
        /// Authentication done and the first ReadyForQuery seen.
        case ready(parameters: [(String, String)], notices: [StartupNotice], processID: Int32, secretKey: [UInt8])
        /// The cancel request is written; close once it has been flushed.
        case sendAndFinish(ByteBuffer)
        case fail(ErrorFields)
        /// SCRAM needs the salted-password keys and they are not cached: run the derivation
        /// off the loop (PBKDF2 with the server's iteration count, which the role's stored
        /// verifier decides), then call ``keysDerived(_:)``.
        case deriveKeys(SCRAMKeyDerivation)
    }

    enum State {
        case connecting
        case awaitingSSLResponse
        case tlsHandshaking
        case awaitingAuthentication
        case scram(SCRAMClient)
        /// The SCRAM exchange waits for ``keysDerived(_:)``.
        case derivingKeys(SCRAMClient)
        case collecting
        case ready
        case failed
    }

    public let target: DatabaseTarget
    public let purpose: Purpose
    private var state: State = .connecting
    private var usingTLS = false
    private var serverEndPoint: [UInt8]?
    private var parameters: [(String, String)] = []
    private var notices: [StartupNotice] = []
    /// A server at debug5 sends a few dozen; the bound keeps a misbehaving one from growing memory.
    static let maxStartupNotices = 1000
    private var backendKey: (Int32, [UInt8])?

    /// Where SCRAM keys derived for a password are kept (tests give their own).
    private let keyCache: SCRAMKeyCache

    public init(target: DatabaseTarget, purpose: Purpose, keyCache: SCRAMKeyCache = .shared) {
        self.target = target
        self.purpose = purpose
        self.keyCache = keyCache
    }

    public var isDerivingKeys: Bool { if case .derivingKeys = state { true } else { false } }

    public var isAwaitingSSLResponse: Bool { if case .awaitingSSLResponse = state { true } else { false } }

    /// libpq never uses TLS over Unix-domain sockets.
    public var isUnixSocket: Bool { target.host.hasPrefix("/") }
    public var wantsTLS: Bool { target.sslMode != .disable && !isUnixSocket }

    public mutating func connected() -> Action {
        guard case .connecting = state else { return .none }
        if wantsTLS {
            state = .awaitingSSLResponse
            var out = ByteBuffer()
            StartupMessage.sslRequest.encode(into: &out)
            return .send(out)
        }
        return startupOrCancel()
    }

    /// The single-byte answer to SSLRequest. `trailingBytes` is true when more bytes arrived
    /// with it: they were not protected by TLS (CVE-2021-23222) and the connection is dropped.
    public mutating func sslResponseReceived(_ byte: UInt8, trailingBytes: Bool) -> Action {
        guard case .awaitingSSLResponse = state else { return fail("unexpected SSL response") }
        switch byte {
        case UInt8(ascii: "S"):
            if trailingBytes {
                return fail("received unencrypted data after SSL response")
            }
            state = .tlsHandshaking
            return .startTLS
        case UInt8(ascii: "N"):
            // No downgrade: every sslmode we accept (require, verify-ca, verify-full) needs TLS.
            return fail("server does not support SSL, but SSL was required")
        case UInt8(ascii: "E"):
            return fail("server refused the SSL request with an error (it may be too old or not a PostgreSQL server)")
        default:
            return fail("received invalid response to SSL negotiation: \(Character(UnicodeScalar(byte)))")
        }
    }

    public mutating func tlsEstablished(serverEndPoint: [UInt8]?) -> Action {
        guard case .tlsHandshaking = state else { return fail("unexpected TLS completion") }
        usingTLS = true
        self.serverEndPoint = serverEndPoint
        return startupOrCancel()
    }

    private mutating func startupOrCancel() -> Action {
        var out = ByteBuffer()
        switch purpose {
        case .cancel(let processID, let secretKey):
            StartupMessage.cancelRequest(processID: processID, secretKey: secretKey).encode(into: &out)
            state = .ready
            return .sendAndFinish(out)
        case .session(let user, _, let database, let extra):
            var packet = StartupPacket(protocolMajor: 3, protocolMinor: 0, parameters: [
                StartupParameter(name: "user", value: user),
                StartupParameter(name: "database", value: database),
            ])
            packet.parameters.append(contentsOf: extra)
            StartupMessage.startup(packet).encode(into: &out)
            state = .awaitingAuthentication
            return .send(out)
        }
    }

    /// One complete backend message during startup.
    public mutating func messageReceived(_ message: BackendMessage) -> Action {
        switch (state, message) {
        case (_, .errorResponse(let fields)):
            state = .failed
            return .fail(fields)
        case (.collecting, .noticeResponse(let fields)):
            // After AuthenticationOk the server may send notices (client_min_messages in
            // `options`, DEBUG lines): the client gets them too, where they were.
            if notices.count < Self.maxStartupNotices {
                notices.append(StartupNotice(afterParameters: parameters.count, fields: fields))
            }
            return .none
        case (_, .noticeResponse):
            return .none
        case (.awaitingAuthentication, .negotiateProtocolVersion):
            return .none
        case (.awaitingAuthentication, .authentication(let request)):
            return authenticationRequested(request)
        case (.scram(var client), .authentication(.saslContinue(let data))):
            do {
                switch try client.answerServerFirst(data) {
                case .reply(let reply):
                    state = .scram(client)
                    return .send(Self.saslResponse(reply))
                case .needsKeys(let derivation):
                    state = .derivingKeys(client)
                    return .deriveKeys(derivation)
                }
            } catch {
                return fail("SCRAM authentication with the server failed: \(error)")
            }
        case (.scram(var client), .authentication(.saslFinal(let data))):
            do {
                try client.serverFinalReceived(data)
                state = .awaitingAuthentication
                return .none
            } catch {
                return fail("SCRAM authentication with the server failed: \(error)")
            }
        case (.collecting, .parameterStatus(let name, let value)):
            parameters.append((name, value))
            return .none
        case (.collecting, .backendKeyData(let processID, let secretKey)):
            backendKey = (processID, secretKey)
            return .none
        case (.collecting, .readyForQuery):
            guard let key = backendKey else { return fail("server sent no BackendKeyData") }
            state = .ready
            return .ready(parameters: parameters, notices: notices, processID: key.0, secretKey: key.1)
        default:
            return fail("unexpected message from server during startup (type \(Character(UnicodeScalar(message.typeByte))))")
        }
    }

    /// The keys ``Action/deriveKeys(_:)`` asked for: the SCRAM exchange goes on.
    /// (An ErrorResponse meanwhile, such as the server's authentication_timeout, failed the
    /// exchange already: then this does nothing.)
    public mutating func keysDerived(_ keys: SCRAMKeys) -> Action {
        guard case .derivingKeys(var client) = state else { return .none }
        do {
            let reply = try client.keysDerived(keys)
            state = .scram(client)
            return .send(Self.saslResponse(reply))
        } catch {
            return fail("SCRAM authentication with the server failed: \(error)")
        }
    }

    private static func saslResponse(_ payload: [UInt8]) -> ByteBuffer {
        var out = ByteBuffer()
        FrontendMessage.saslResponse(payload).encode(into: &out)
        return out
    }

    /// A server that asks for a password (cleartext or md5) where only SCRAM pass-through keys
    /// are at hand cannot be answered: the keys are no password.
    static func missingPasswordMessage(_ user: String, _ password: Secret?) -> String {
        password == nil
            ? "the server requested password authentication, \(noPassword) for user \"\(user)\""
            : "the server requested password authentication, but user \"\(user)\" logs in with SCRAM pass-through (auth_query), "
                + "which needs scram-sha-256 on the server; configure server_password to use another method"
    }

    private mutating func authenticationRequested(_ request: AuthenticationRequest) -> Action {
        guard case .session(let user, let password, _, _) = purpose else { return fail("unexpected authentication request") }
        switch request {
        case .ok:
            state = .collecting
            return .none
        case .cleartextPassword:
            guard let password, !password.isSCRAMPassThrough else { return fail(Self.missingPasswordMessage(user, password)) }
            // A cleartext password goes only over an encrypted or local connection.
            guard usingTLS || isUnixSocket else { return fail("the server requested a cleartext password over an unencrypted connection; refusing to send it") }
            var out = ByteBuffer()
            FrontendMessage.passwordMessage(password.reveal()).encode(into: &out)
            return .send(out)
        case .md5Password(let salt):
            guard let password, !password.isSCRAMPassThrough else { return fail(Self.missingPasswordMessage(user, password)) }
            let stored = MD5Password.hash(user: user, password: password.reveal())
            var out = ByteBuffer()
            FrontendMessage.passwordMessage(MD5Password.response(storedHash: stored, salt: salt)).encode(into: &out)
            return .send(out)
        case .sasl(let mechanisms):
            guard let password else { return fail("the server requested SCRAM authentication, \(Self.noPassword) for user \"\(user)\"") }
            let binding: SCRAMChannelBinding
            if usingTLS, mechanisms.contains("SCRAM-SHA-256-PLUS"), let serverEndPoint {
                binding = .tlsServerEndPoint(serverEndPoint)
            } else if usingTLS {
                binding = .supportedButNotUsed
            } else {
                binding = .notSupported
            }
            guard mechanisms.contains(binding.mechanismName) else {
                return fail("none of the server's SASL authentication mechanisms are supported")
            }
            var client = password.revealSCRAMKeys().map {
                SCRAMClient(username: user, clientKey: $0.clientKey, serverKey: $0.serverKey, channelBinding: binding)
            } ?? SCRAMClient(username: user, password: password.reveal(), channelBinding: binding, keyCache: keyCache)
            let first = client.clientFirstMessage()
            state = .scram(client)
            var out = ByteBuffer()
            FrontendMessage.saslInitialResponse(mechanism: client.mechanism, data: first).encode(into: &out)
            return .send(out)
        case .saslContinue, .saslFinal:
            return fail("unexpected SASL message from server")
        case .unsupported(let code):
            return fail("the server requested an authentication method this proxy does not support (code \(code))")
        }
    }

    static let noPassword = "but no server_password is configured"

    /// The server asked for a password and Portcullis has none for the role.
    public static func isMissingPassword(_ fields: ErrorFields) -> Bool {
        fields.sqlState == SQLState.connectionFailure && (fields.message ?? "").contains(noPassword)
    }

    private mutating func fail(_ reason: String) -> Action {
        state = .failed
        return .fail(Self.connectionError(database: target.name, reason: reason))
    }

    /// What the client sees when the upstream connection cannot be made: 08006 like libpq's
    /// connection failures, naming the database entry but never credentials.
    public static func connectionError(database: String, reason: String) -> ErrorFields {
        .error(sqlState: SQLState.connectionFailure,
               message: "could not connect to upstream server for database \"\(database)\": \(reason)",
               severity: "FATAL")
    }
}

extension SCRAMChannelBinding {
    var mechanismName: String {
        if case .tlsServerEndPoint = self { return "SCRAM-SHA-256-PLUS" }
        return "SCRAM-SHA-256"
    }
}

/// A NoticeResponse the server sent during start-up, and how many ParameterStatus messages
/// came before it, so the client sees both in the server's order.
public struct StartupNotice: Sendable {
    public var afterParameters: Int
    public var fields: ErrorFields
}
