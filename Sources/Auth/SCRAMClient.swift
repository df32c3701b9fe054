/// How the client side of a SCRAM exchange treats channel binding (RFC 5802 section 6;
/// PostgreSQL docs 55.3.1 "SCRAM-SHA-256 Authentication").
public enum SCRAMChannelBinding: Equatable, Sendable {
    /// No TLS to the server: gs2 flag "n".
    case notSupported
    /// TLS, but the server did not offer SCRAM-SHA-256-PLUS: gs2 flag "y", so a server that
    /// does support binding knows an attacker stripped the PLUS offer (downgrade detection).
    case supportedButNotUsed
    /// SCRAM-SHA-256-PLUS with the hash of the server's certificate (RFC 5929 section 4.1).
    case tlsServerEndPoint([UInt8])
}

/// Client-side failures, with libpq's (`fe-auth-scram.c`, `fe-auth.c`) wording in `message`.
public enum SCRAMError: Error, Equatable, Sendable {
    case malformedMessage(String)
    case nonceMismatch
    case invalidSalt
    case invalidIterationCount
    /// The server sent `e=<value>` (RFC 5802 section 7 server-error).
    case serverError(String)
    case invalidServerSignature
    /// The server could not prove it knows the password's ServerKey.
    case incorrectServerSignature
    /// A message arrived when the exchange was not expecting one.
    case unexpectedMessage
    case noSupportedMechanism
    case plusOfferedWithoutTLS

    public var message: String {
        switch self {
        case .malformedMessage(let detail): return "malformed SCRAM message (\(detail))"
        case .nonceMismatch: return "invalid SCRAM response (nonce mismatch)"
        case .invalidSalt: return "malformed SCRAM message (invalid salt)"
        case .invalidIterationCount: return "malformed SCRAM message (invalid iteration count)"
        case .serverError(let value): return "error received from server in SCRAM exchange: \(value)"
        case .invalidServerSignature: return "malformed SCRAM message (invalid server signature)"
        case .incorrectServerSignature: return "incorrect server signature"
        case .unexpectedMessage: return "invalid SCRAM exchange state"
        case .noSupportedMechanism: return "none of the server's SASL authentication mechanisms are supported"
        case .plusOfferedWithoutTLS:
            return "server offered SCRAM-SHA-256-PLUS authentication over a non-SSL connection"
        }
    }
}

/// The client half of SCRAM-SHA-256[-PLUS] (RFC 5802, RFC 7677), behaving as libpq does when
/// the proxy logs in to the upstream PostgreSQL (Protocol 55.3.1; `fe-auth-scram.c`).
///
/// Flow: `clientFirstMessage()` is the SASLInitialResponse payload; the payload of
/// AuthenticationSASLContinue goes to `serverFirstReceived` whose result is the
/// SASLResponse payload; the payload of AuthenticationSASLFinal goes to `serverFinalReceived`.
/// Only when that returned without throwing is `isServerVerified` true; an AuthenticationOk
/// before that must be treated as an authentication failure (a server that skips the final
/// message never proved it knows the password).
public struct SCRAMClient: Sendable {
    enum State: Sendable {
        case initial
        case clientFirstSent
        /// server-first-message read; the salted-password keys are being derived elsewhere.
        case awaitingKeys(clientFinalWithoutProof: [UInt8], authMessage: [UInt8])
        case clientFinalSent(expectedServerSignature: [UInt8])
        case serverVerified
        case failed
    }

    public let channelBinding: SCRAMChannelBinding
    public let username: String
    private let password: [UInt8]
    private let keyCache: SCRAMKeyCache
    /// SCRAM pass-through: ClientKey and ServerKey instead of a password.
    private let keys: (clientKey: [UInt8], serverKey: [UInt8])?
    private let clientNonce: [UInt8]
    /// What goes after "n=" in client-first-message. Empty, as libpq sends it: PostgreSQL
    /// takes the role from the StartupMessage and ignores this.
    private let messageUsername: String
    private var state: State = .initial

    public init(username: String, password: String, channelBinding: SCRAMChannelBinding,
                keyCache: SCRAMKeyCache = .shared) {
        self.init(username: username, password: password, channelBinding: channelBinding,
                  clientNonce: String(decoding: makeSCRAMNonce(), as: UTF8.self), messageUsername: "",
                  keyCache: keyCache)
    }

    /// Authenticates with a ClientKey and ServerKey (recovered from a client's SCRAM proof,
    /// as PgBouncer's SCRAM pass-through does) instead of a password. The server's salt and
    /// iteration count must be the ones the keys were derived with, or the proof fails.
    public init(username: String, clientKey: [UInt8], serverKey: [UInt8], channelBinding: SCRAMChannelBinding) {
        self.username = username
        password = []
        keyCache = .shared
        keys = (clientKey, serverKey)
        self.channelBinding = channelBinding
        clientNonce = Array(String(decoding: makeSCRAMNonce(), as: UTF8.self).utf8)
        messageUsername = ""
    }

    /// Test seam: fixed nonce and a username inside the SCRAM message (RFC 7677 vector).
    init(username: String, password: String, channelBinding: SCRAMChannelBinding,
         clientNonce: String, messageUsername: String, keyCache: SCRAMKeyCache = .shared) {
        self.keyCache = keyCache
        self.username = username
        self.password = SCRAMPassword.normalized(password)
        keys = nil
        self.channelBinding = channelBinding
        self.clientNonce = Array(clientNonce.utf8)
        self.messageUsername = messageUsername
    }

    /// The SASL mechanism to name in SASLInitialResponse.
    public var mechanism: String {
        switch channelBinding {
        case .notSupported, .supportedButNotUsed: return SCRAMMechanism.scramSHA256.rawValue
        case .tlsServerEndPoint: return SCRAMMechanism.scramSHA256Plus.rawValue
        }
    }

    /// True once the server's signature has been verified (mutual authentication done).
    public var isServerVerified: Bool {
        switch state {
        case .serverVerified: return true
        case .initial, .clientFirstSent, .awaitingKeys, .clientFinalSent, .failed: return false
        }
    }

    /// Chooses the mechanism from an AuthenticationSASL list as libpq's `pg_SASL_init` does
    /// with `channel_binding=prefer`: PLUS when offered and we are on TLS, else SCRAM-SHA-256.
    /// A PLUS offer over a connection without TLS is refused, since the server would reject
    /// a non-binding exchange anyway and it suggests TLS was stripped on the way.
    public static func mechanismToUse(offered: [String], haveTLSServerEndPoint: Bool) throws(SCRAMError) -> SCRAMMechanism {
        var selected: SCRAMMechanism?
        for name in offered {
            guard let mechanism = SCRAMMechanism(rawValue: name) else { continue }
            switch mechanism {
            case .scramSHA256Plus:
                guard haveTLSServerEndPoint else { throw .plusOfferedWithoutTLS }
                selected = .scramSHA256Plus
            case .scramSHA256:
                if selected == nil { selected = .scramSHA256 }
            }
        }
        guard let selected else { throw .noSupportedMechanism }
        return selected
    }

    /// The channel-binding mode for a server's offer: combines `mechanismToUse` with whether
    /// the connection is on TLS and the upstream certificate's tls-server-end-point hash.
    public static func channelBindingToUse(offered: [String], onTLS: Bool,
                                           tlsServerEndPoint: [UInt8]?) throws(SCRAMError) -> SCRAMChannelBinding {
        let endPoint = onTLS ? tlsServerEndPoint : nil
        switch try mechanismToUse(offered: offered, haveTLSServerEndPoint: endPoint != nil) {
        case .scramSHA256Plus:
            guard let endPoint else { throw .noSupportedMechanism }
            return .tlsServerEndPoint(endPoint)
        case .scramSHA256:
            return onTLS ? .supportedButNotUsed : .notSupported
        }
    }

    private var gs2Flag: UInt8 {
        switch channelBinding {
        case .notSupported: return UInt8(ascii: "n")
        case .supportedButNotUsed: return UInt8(ascii: "y")
        case .tlsServerEndPoint: return UInt8(ascii: "p")
        }
    }

    private var clientFirstBare: [UInt8] {
        Array("n=".utf8) + Self.saslName(messageUsername) + Array(",r=".utf8) + clientNonce
    }

    /// RFC 5802 section 5.1: "," and "=" in a username are sent as "=2C" and "=3D".
    static func saslName(_ name: String) -> [UInt8] {
        var out: [UInt8] = []
        for byte in name.utf8 {
            switch byte {
            case UInt8(ascii: ","): out.append(contentsOf: Array("=2C".utf8))
            case UInt8(ascii: "="): out.append(contentsOf: Array("=3D".utf8))
            default: out.append(byte)
            }
        }
        return out
    }

    /// client-first-message: gs2-header + client-first-message-bare.
    public mutating func clientFirstMessage() -> [UInt8] {
        switch state {
        case .initial: state = .clientFirstSent
        case .clientFirstSent, .awaitingKeys, .clientFinalSent, .serverVerified, .failed: break
        }
        return gs2Header(flag: gs2Flag) + clientFirstBare
    }

    /// Parses server-first-message and returns client-final-message (with the proof),
    /// deriving the salted-password keys on the calling thread when they are not cached: for
    /// tests and tools. An event loop uses ``answerServerFirst(_:)``.
    public mutating func serverFirstReceived(_ data: [UInt8]) throws(SCRAMError) -> [UInt8] {
        switch try answerServerFirst(data) {
        case .reply(let message): return message
        case .needsKeys(let derivation): return try keysDerived(derivation.derive())
        }
    }

    /// What answering server-first-message takes.
    public enum Step: Sendable {
        /// client-final-message, ready: the keys were at hand (cached, or pass-through keys).
        case reply([UInt8])
        /// PBKDF2 must run first (its cost is the server's iteration count): run the
        /// derivation off the loop, then give its keys to ``keysDerived(_:)``.
        case needsKeys(SCRAMKeyDerivation)
    }

    /// Parses server-first-message. The answer comes at once when the keys need no PBKDF2
    /// (a cache hit costs no thread hop); otherwise the exchange waits for ``keysDerived(_:)``.
    public mutating func answerServerFirst(_ data: [UInt8]) throws(SCRAMError) -> Step {
        switch state {
        case .clientFirstSent: break
        case .initial, .awaitingKeys, .clientFinalSent, .serverVerified, .failed:
            state = .failed
            throw .unexpectedMessage
        }
        do {
            let (withoutProof, authMessage, lookup) = try readServerFirst(data)
            state = .awaitingKeys(clientFinalWithoutProof: withoutProof, authMessage: authMessage)
            switch lookup {
            case .found(let keys): return .reply(try keysDerived(keys))
            case .missing(let derivation): return .needsKeys(derivation)
            }
        } catch {
            state = .failed
            throw error
        }
    }

    /// The keys of the derivation ``answerServerFirst(_:)`` asked for: client-final-message.
    public mutating func keysDerived(_ keys: SCRAMKeys) throws(SCRAMError) -> [UInt8] {
        guard case .awaitingKeys(let withoutProof, let authMessage) = state else {
            state = .failed
            throw .unexpectedMessage
        }
        let proof = xor(keys.clientKey, Crypto.hmacSHA256(key: keys.storedKey, data: authMessage))
        state = .clientFinalSent(expectedServerSignature: Crypto.hmacSHA256(key: keys.serverKey, data: authMessage))
        return withoutProof + Array(",p=".utf8) + Base64.encodeToBytes(proof)
    }

    /// Checks server-final-message: the server's signature must prove it holds ServerKey.
    public mutating func serverFinalReceived(_ data: [UInt8]) throws(SCRAMError) {
        guard case .clientFinalSent(let expected) = state else {
            state = .failed
            throw .unexpectedMessage
        }
        state = .failed
        var reader = SCRAMAttributeReader(data)
        if reader.next == UInt8(ascii: "e") {
            let value = (try? reader.read(UInt8(ascii: "e"))) ?? []
            throw .serverError(String(decoding: value, as: UTF8.self))
        }
        let encodedSignature = try Self.read(UInt8(ascii: "v"), from: &reader)
        guard let signature = Base64.decode(bytes: encodedSignature),
              signature.count == Crypto.sha256Length else { throw .invalidServerSignature }
        guard reader.atEnd else { throw .malformedMessage("garbage at end of server-final-message") }
        guard Crypto.constantTimeEquals(signature, expected) else { throw .incorrectServerSignature }
        state = .serverVerified
    }

    /// client-final-message-without-proof, the AuthMessage (RFC 5802 section 3), and the
    /// keys or what deriving them takes.
    private func readServerFirst(_ data: [UInt8]) throws(SCRAMError)
        -> (withoutProof: [UInt8], authMessage: [UInt8], keys: SCRAMKeyCache.Lookup) {
        var reader = SCRAMAttributeReader(data)
        if reader.next == UInt8(ascii: "e") {
            let value = (try? reader.read(UInt8(ascii: "e"))) ?? []
            throw .serverError(String(decoding: value, as: UTF8.self))
        }
        let nonce = try Self.read(UInt8(ascii: "r"), from: &reader)
        // The server must extend our nonce with its own (RFC 5802 section 5.1 "r").
        guard nonce.count > clientNonce.count, Array(nonce.prefix(clientNonce.count)) == clientNonce else {
            throw .nonceMismatch
        }
        let encodedSalt = try Self.read(UInt8(ascii: "s"), from: &reader)
        let iterationText = try Self.read(UInt8(ascii: "i"), from: &reader)
        guard let salt = Base64.decode(bytes: encodedSalt) else { throw .invalidSalt }
        guard !iterationText.isEmpty, iterationText.count <= 10,
              iterationText.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }),
              let iterations = Int(String(decoding: iterationText, as: UTF8.self)),
              iterations >= 1, iterations <= Int(Int32.max) else { throw .invalidIterationCount }
        guard reader.atEnd else { throw .malformedMessage("garbage at end of server-first-message") }

        let channelBindingData: [UInt8]
        switch channelBinding {
        case .notSupported, .supportedButNotUsed: channelBindingData = []
        case .tlsServerEndPoint(let hash): channelBindingData = hash
        }
        let withoutProof = Array("c=".utf8) + Base64.encodeToBytes(gs2Header(flag: gs2Flag) + channelBindingData)
            + Array(",r=".utf8) + nonce
        let authMessage = scramAuthMessage(clientFirstBare: clientFirstBare, serverFirst: data,
                                           clientFinalWithoutProof: withoutProof)
        // No upper bound below libpq's (any count that fits): PostgreSQL 16 allows
        // scram_iterations up to INT_MAX. The cost is bounded where the derivation runs.
        let lookup = self.keys.map { SCRAMKeyCache.Lookup.found(SCRAMKeys(clientKey: $0.clientKey, serverKey: $0.serverKey)) }
            ?? keyCache.lookup(password: password, salt: salt, iterations: iterations)
        return (withoutProof, authMessage, lookup)
    }

    private static func read(_ attribute: UInt8, from reader: inout SCRAMAttributeReader) throws(SCRAMError) -> [UInt8] {
        do {
            return try reader.read(attribute)
        } catch {
            throw .malformedMessage(error.clientDetail)
        }
    }
}
