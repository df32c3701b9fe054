/// What the proxy must do next in a SCRAM exchange with a client (Protocol 55.3.1).
public enum SCRAMServerAction: Equatable, Sendable {
    /// Send AuthenticationSASLContinue with this payload.
    case sendContinue([UInt8])
    /// Send AuthenticationSASLFinal with this payload, then AuthenticationOk.
    case sendFinal([UInt8])
    /// Send this ErrorResponse (severity FATAL) and close.
    case fail(SCRAMFailure)
}

/// An authentication error with the SQLSTATE, message and detail PostgreSQL's backend sends
/// for the same situation (`auth-scram.c`, `auth-sasl.c`, `auth.c` `auth_failed`).
public struct SCRAMFailure: Error, Equatable, Sendable {
    public let sqlState: String
    public let message: String
    public let detail: String?

    public init(sqlState: String, message: String, detail: String? = nil) {
        self.sqlState = sqlState
        self.message = message
        self.detail = detail
    }

    /// 28P01 invalid_password: wrong proof, unknown user, or no usable secret. PostgreSQL
    /// gives all of these the same text so a client cannot probe which roles exist.
    public static func passwordAuthenticationFailed(user: String) -> SCRAMFailure {
        SCRAMFailure(sqlState: "28P01", message: "password authentication failed for user \"\(user)\"")
    }

    /// 08P01 protocol_violation "malformed SCRAM message" with PostgreSQL's errdetail.
    static func malformed(_ detail: String) -> SCRAMFailure {
        SCRAMFailure(sqlState: "08P01", message: "malformed SCRAM message", detail: detail)
    }

    static func protocolViolation(_ message: String, detail: String? = nil) -> SCRAMFailure {
        SCRAMFailure(sqlState: "08P01", message: message, detail: detail)
    }

    /// 28000 invalid_authorization_specification, which PostgreSQL uses for channel-binding
    /// negotiation and check failures.
    static func invalidAuthorization(_ message: String, detail: String? = nil) -> SCRAMFailure {
        SCRAMFailure(sqlState: "28000", message: message, detail: detail)
    }

    static let invalidExchangeState = SCRAMFailure(sqlState: "XX000", message: "invalid SCRAM exchange state")
}

/// The server half of SCRAM-SHA-256[-PLUS] (RFC 5802, RFC 7677), behaving as PostgreSQL's
/// `auth-scram.c` when Portcullis authenticates a client against configured verifiers
/// (PostgreSQL docs 21.5 "Password Authentication", Protocol 55.3 "SASL Authentication").
///
/// Flow: send AuthenticationSASL listing `mechanisms`; give the SASLInitialResponse to
/// `initialResponseReceived` and each later SASLResponse to `responseReceived`.
public struct SCRAMServer: Sendable {
    struct Credentials: Sendable {
        let iterations: Int
        let salt: [UInt8]
        let storedKey: [UInt8]
        let serverKey: [UInt8]
        /// A mock exchange for a role without a verifier: it runs to the end and then fails.
        let doomed: Bool
    }

    struct Exchange: Sendable {
        let channelBindingInUse: Bool
        let gs2Flag: UInt8
        let clientFirstBare: [UInt8]
        let clientNonce: [UInt8]
        let serverFirst: [UInt8]
    }

    enum State: Sendable {
        case awaitingMechanism
        /// The SASLInitialResponse had no data (length -1): the client-first comes next.
        case awaitingClientFirst(channelBindingInUse: Bool)
        case serverFirstSent(Exchange)
        case finished
        case failed
    }

    public let username: String
    /// Our own certificate's tls-server-end-point hash when the client is on TLS.
    public let channelBinding: [UInt8]?
    let credentials: Credentials
    /// After a successful exchange: the ClientKey the client's proof revealed (proof XOR
    /// ClientSignature, RFC 5802 section 3), for SCRAM pass-through upstream.
    public private(set) var recoveredClientKey: [UInt8]?
    /// The verifier's ServerKey, with ``recoveredClientKey`` enough to log in as the same role.
    public var passThroughKeys: (clientKey: [UInt8], serverKey: [UInt8])? {
        recoveredClientKey.map { ($0, credentials.serverKey) }
    }
    private let serverNonce: [UInt8]
    private var state: State = .awaitingMechanism

    /// `verifier` nil means the role is unknown (or has no SCRAM secret): the exchange is run
    /// with a salt derived from `username` and `mockSeed`, so it looks the same as for a real
    /// role, and fails at the end with the wrong-password error. `mockSeed` should be a
    /// per-installation secret that is stable across restarts (PostgreSQL uses the cluster's
    /// mock authentication nonce), so the fake salt is stable too.
    public init(verifier: SCRAMVerifier?, mockSeed: [UInt8], username: String, channelBinding: [UInt8]?) {
        self.init(verifier: verifier, mockSeed: mockSeed, username: username, channelBinding: channelBinding,
                  serverNonce: String(decoding: makeSCRAMNonce(), as: UTF8.self))
    }

    /// Test seam: a fixed server nonce (RFC 7677 vector).
    init(verifier: SCRAMVerifier?, mockSeed: [UInt8], username: String, channelBinding: [UInt8]?, serverNonce: String) {
        self.username = username
        self.channelBinding = channelBinding
        self.serverNonce = Array(serverNonce.utf8)
        if let verifier {
            credentials = Credentials(iterations: verifier.iterations, salt: verifier.salt,
                                      storedKey: verifier.storedKey, serverKey: verifier.serverKey, doomed: false)
        } else {
            credentials = Credentials(iterations: SCRAMVerifier.defaultIterations,
                                      salt: Self.mockSalt(username: username, mockSeed: mockSeed),
                                      storedKey: [UInt8](repeating: 0, count: Crypto.sha256Length),
                                      serverKey: [UInt8](repeating: 0, count: Crypto.sha256Length),
                                      doomed: true)
        }
    }

    /// As PostgreSQL's `scram_mock_salt`: SHA-256(username || secret), cut to the salt length.
    static func mockSalt(username: String, mockSeed: [UInt8]) -> [UInt8] {
        Array(Crypto.sha256(Array(username.utf8) + mockSeed).prefix(SCRAMVerifier.defaultSaltLength))
    }

    /// The mechanisms for AuthenticationSASL, most preferred first; PLUS only with TLS.
    public var mechanisms: [String] {
        channelBinding == nil
            ? [SCRAMMechanism.scramSHA256.rawValue]
            : [SCRAMMechanism.scramSHA256Plus.rawValue, SCRAMMechanism.scramSHA256.rawValue]
    }

    /// True once the client's proof was verified and server-final produced.
    public var isAuthenticated: Bool {
        switch state {
        case .finished: return true
        case .awaitingMechanism, .awaitingClientFirst, .serverFirstSent, .failed: return false
        }
    }

    /// SASLInitialResponse: the selected mechanism and its data; nil data is the protocol's
    /// length -1 ("no initial response"), answered with an empty challenge.
    public mutating func initialResponseReceived(mechanism: String, data: [UInt8]?) -> SCRAMServerAction {
        guard case .awaitingMechanism = state else { return fail(.invalidExchangeState) }
        let channelBindingInUse: Bool
        if mechanism == SCRAMMechanism.scramSHA256Plus.rawValue && channelBinding != nil {
            channelBindingInUse = true
        } else if mechanism == SCRAMMechanism.scramSHA256.rawValue {
            channelBindingInUse = false
        } else {
            return fail(.protocolViolation("client selected an invalid SASL authentication mechanism"))
        }
        guard let data else {
            state = .awaitingClientFirst(channelBindingInUse: channelBindingInUse)
            return .sendContinue([])
        }
        return clientFirstReceived(data, channelBindingInUse: channelBindingInUse)
    }

    /// SASLResponse: client-first (after an empty challenge) or client-final.
    public mutating func responseReceived(_ data: [UInt8]) -> SCRAMServerAction {
        switch state {
        case .awaitingClientFirst(let channelBindingInUse):
            return clientFirstReceived(data, channelBindingInUse: channelBindingInUse)
        case .serverFirstSent(let exchange):
            return clientFinalReceived(data, exchange: exchange)
        case .awaitingMechanism, .finished, .failed:
            return fail(.invalidExchangeState)
        }
    }

    private mutating func fail(_ failure: SCRAMFailure) -> SCRAMServerAction {
        state = .failed
        return .fail(failure)
    }

    /// PostgreSQL checks emptiness and embedded NULs before parsing any SCRAM message.
    private static func lengthProblem(_ data: [UInt8]) -> SCRAMFailure? {
        if data.isEmpty { return .malformed("The message is empty.") }
        if data.contains(0) { return .malformed("Message length does not match input length.") }
        return nil
    }

    private mutating func clientFirstReceived(_ data: [UInt8], channelBindingInUse: Bool) -> SCRAMServerAction {
        if let problem = Self.lengthProblem(data) { return fail(problem) }
        switch parseClientFirst(data, channelBindingInUse: channelBindingInUse) {
        case .failure(let failure):
            return fail(failure)
        case .success(let parsed):
            let serverFirst = Array("r=".utf8) + parsed.clientNonce + serverNonce
                + Array(",s=".utf8) + Base64.encodeToBytes(credentials.salt)
                + Array(",i=\(credentials.iterations)".utf8)
            state = .serverFirstSent(Exchange(channelBindingInUse: channelBindingInUse, gs2Flag: parsed.gs2Flag,
                                              clientFirstBare: parsed.clientFirstBare,
                                              clientNonce: parsed.clientNonce, serverFirst: serverFirst))
            return .sendContinue(serverFirst)
        }
    }

    private mutating func clientFinalReceived(_ data: [UInt8], exchange: Exchange) -> SCRAMServerAction {
        if let problem = Self.lengthProblem(data) { return fail(problem) }
        let parsed: ParsedClientFinal
        switch parseClientFinal(data, exchange: exchange) {
        case .failure(let failure): return fail(failure)
        case .success(let value): parsed = value
        }
        guard Crypto.constantTimeEquals(parsed.nonce, exchange.clientNonce + serverNonce) else {
            return fail(.protocolViolation("invalid SCRAM response", detail: "Nonce does not match."))
        }
        let authMessage = scramAuthMessage(clientFirstBare: exchange.clientFirstBare, serverFirst: exchange.serverFirst,
                                           clientFinalWithoutProof: parsed.withoutProof)
        // The proof is checked even in a mock exchange, so timing does not reveal unknown roles.
        let clientSignature = Crypto.hmacSHA256(key: credentials.storedKey, data: authMessage)
        let clientKey = xor(parsed.proof, clientSignature)
        let proofValid = Crypto.constantTimeEquals(Crypto.sha256(clientKey), credentials.storedKey)
        guard proofValid, !credentials.doomed else {
            return fail(.passwordAuthenticationFailed(user: username))
        }
        state = .finished
        recoveredClientKey = clientKey
        let serverSignature = Crypto.hmacSHA256(key: credentials.serverKey, data: authMessage)
        return .sendFinal(Array("v=".utf8) + Base64.encodeToBytes(serverSignature))
    }
}
