import XCTest
import Wire
import Config
import Auth
import EventLoop
@testable import Proxy

/// `password=auth_query` identities: the start-up machine asks the shell for the verifier,
/// waits without reading, and then authenticates exactly as with a configured verifier.
final class AuthQueryLoginTests: XCTestCase, StartupMachineDriving {
    typealias Rules = ClientAuthenticationTests.FixedRules
    static let scram = SCRAMVerifier.make(password: "secret", salt: Array(repeating: 5, count: 16))
    let salt: [UInt8] = [1, 2, 3, 4]

    func config() throws -> PortcullisConfig {
        try ConfigLoader.parse("""
        [portcullis]
        local_auth_method = trust
        auth_user = lookup
        [tls]
        client_tls = allow
        client_tls_cert_file = /nonexistent/server.crt
        client_tls_key_file = /nonexistent/server.key
        [databases]
        app = host=127.0.0.1 port=5432 dbname=app sslmode=disable
        [identities]
        dora = mode=read-write password=auth_query server_password=x
        erin = mode=read-write password=auth_query
        alice = mode=read-write password='\(Self.scram.text)'
        """, fileName: "test.ini")
    }

    func machine(_ method: ClientAuthRule.Method, tls: Bool = true) throws -> ClientStartupMachine {
        var m = ClientStartupMachine(config: try config(), transport: .tcp(remoteHost: "10.1.2.3"), mockSeed: [9],
                                     access: Rules(rule: ClientAuthRule(method: method, origin: "t")), md5Salt: salt)
        if tls { _ = m.tlsHandshakeCompleted(serverEndPoint: nil, direct: false, alpnPostgreSQL: false) }
        return m
    }

    func refusal(_ action: ClientStartupMachine.Action) -> ErrorFields? {
        guard let bytes = action.refusalBytes else { return nil }
        for case .errorResponse(let fields) in messages(bytes) { return fields }
        return nil
    }

    func testPasswordLineWaitsForTheVerifierThenChecksIt() throws {
        for (given, accepted) in [("secret", true), ("wrong", false)] {
            var m = try machine(.password)
            guard case .lookUpVerifier(let user, let database) = startup("dora", &m) else { return XCTFail("expected a lookup") }
            XCTAssertEqual(user, "dora")
            XCTAssertEqual(database, "app")
            // Bytes that arrive meanwhile wait in the buffer.
            var early = ByteBuffer()
            FrontendMessage.passwordMessage(given).encode(into: &early)
            let before = early.readableBytes
            guard case .none = m.bytesReceived(&early) else { return XCTFail("nothing happens while waiting") }
            XCTAssertEqual(early.readableBytes, before)
            guard case .sendBytes(let out) = m.verifierLookedUp(Self.scram.clientVerifier) else { return XCTFail() }
            XCTAssertEqual(messages(out), [.authentication(.cleartextPassword)])
            let action = derivingKeys(m.bytesReceived(&early), &m)
            if accepted {
                guard case .connectUpstream(let request) = action else { return XCTFail("right password must log in") }
                XCTAssertEqual(request.clientUser, "dora")
            } else {
                XCTAssertEqual(refusal(action)?.message, "password authentication failed for user \"dora\"")
                XCTAssertEqual(refusal(action)?.sqlState, "28P01")
            }
        }
    }

    /// No verifier (no such role upstream, NULL password, or a failed lookup): the mock SCRAM
    /// exchange, failing at its end exactly as for a user Portcullis does not know.
    func testNoVerifierGetsTheMockExchange() throws {
        func attempt(_ user: String, lookup: Bool) throws -> ErrorFields? {
            var m = try machine(.scramSHA256)
            var action = startup(user, &m)
            if lookup {
                guard case .lookUpVerifier = action else { XCTFail("expected a lookup"); return nil }
                action = m.verifierLookedUp(nil)
            }
            guard case .sendBytes(let out) = action, case .authentication(.sasl)? = messages(out).first else {
                XCTFail("expected SASL"); return nil
            }
            var client = SCRAMClient(username: user, password: "secret", channelBinding: .notSupported)
            var b = ByteBuffer()
            FrontendMessage.saslInitialResponse(mechanism: client.mechanism, data: client.clientFirstMessage()).encode(into: &b)
            guard case .sendBytes(let cont) = m.bytesReceived(&b),
                  case .authentication(.saslContinue(let serverFirst))? = messages(cont).first else { XCTFail(); return nil }
            FrontendMessage.saslResponse(try client.serverFirstReceived(serverFirst)).encode(into: &b)
            return refusal(m.bytesReceived(&b))
        }
        XCTAssertEqual(try attempt("dora", lookup: true)?.message, "password authentication failed for user \"dora\"")
        XCTAssertEqual(try attempt("nobody", lookup: false)?.message, "password authentication failed for user \"nobody\"")
    }

    /// After the startup packet asked for a lookup: the verifier arrives, a SCRAM exchange with
    /// password "secret" follows; the login the machine asks for, or nil if it asked for none.
    func scramLogin(_ user: String, _ m: inout ClientStartupMachine) throws -> UpstreamRequest? {
        guard case .sendBytes = m.verifierLookedUp(Self.scram.clientVerifier) else { return nil }
        var client = SCRAMClient(username: user, password: "secret", channelBinding: .notSupported)
        var b = ByteBuffer()
        FrontendMessage.saslInitialResponse(mechanism: client.mechanism, data: client.clientFirstMessage()).encode(into: &b)
        guard case .sendBytes(let cont) = m.bytesReceived(&b),
              case .authentication(.saslContinue(let serverFirst))? = messages(cont).first else { return nil }
        FrontendMessage.saslResponse(try client.serverFirstReceived(serverFirst)).encode(into: &b)
        guard case .sendBytesThenConnect(_, let request) = m.bytesReceived(&b) else { return nil }
        return request
    }

    func testSCRAMWithTheLookedUpVerifierLogsIn() throws {
        var m = try machine(.scramSHA256)
        guard case .lookUpVerifier = startup("dora", &m) else { return XCTFail() }
        let request = try XCTUnwrap(try scramLogin("dora", &m), "expected login")
        XCTAssertEqual(request.serverUser, "dora")
    }

    /// md5 verifiers from pg_authid are used as configured md5 verifiers are (auth.c
    /// CheckPWChallengeAuth: an md5 line challenges with MD5 only for an md5 secret).
    func testMD5VerifierFromTheUpstream() throws {
        let stored = MD5Password.hash(user: "dora", password: "secret")
        var m = try machine(.md5)
        guard case .lookUpVerifier = startup("dora", &m) else { return XCTFail() }
        guard case .sendBytes(let out) = m.verifierLookedUp(.md5(stored)) else { return XCTFail() }
        XCTAssertEqual(messages(out), [.authentication(.md5Password(salt: salt))])
        guard case .connectUpstream = password(MD5Password.response(storedHash: stored, salt: salt), &m) else {
            return XCTFail("right md5 response")
        }
    }

    func testNoLookupWhereNoPasswordIsChecked() throws {
        var trust = try machine(.trust)
        guard case .connectUpstream = startup("dora", &trust) else { return XCTFail("trust needs no verifier") }
        var reject = try machine(.reject)
        XCTAssertEqual(refusal(startup("dora", &reject))?.sqlState, "28000")
        // A configured verifier is never looked up.
        var alice = try machine(.scramSHA256)
        guard case .sendBytes = startup("alice", &alice) else { return XCTFail() }
    }

    /// Without a server password the client's SCRAM proof logs in upstream as the same role:
    /// the recovered ClientKey and the verifier's ServerKey answer a real SCRAM exchange.
    func testSCRAMPassThroughKeysLogInUpstream() throws {
        var m = try machine(.scramSHA256)
        guard case .lookUpVerifier = startup("erin", &m) else { return XCTFail() }
        let request = try XCTUnwrap(try scramLogin("erin", &m), "expected login")
        XCTAssertEqual(request.serverUser, "erin")
        let secret = try XCTUnwrap(request.serverPassword)
        XCTAssertTrue(secret.isSCRAMPassThrough)
        XCTAssertEqual("\(secret)", "********")
        let keys = try XCTUnwrap(secret.revealSCRAMKeys())

        // The keys against a server holding the same verifier (as PostgreSQL does).
        var upstream = SCRAMServer(verifier: Self.scram, mockSeed: [1], username: "erin", channelBinding: nil)
        var passThrough = SCRAMClient(username: "erin", clientKey: keys.clientKey, serverKey: keys.serverKey, channelBinding: .notSupported)
        guard case .sendContinue(let first) = upstream.initialResponseReceived(mechanism: passThrough.mechanism, data: passThrough.clientFirstMessage()),
              case .sendFinal(let final) = upstream.responseReceived(try passThrough.serverFirstReceived(first)) else {
            return XCTFail("pass-through keys must log in")
        }
        XCTAssertNoThrow(try passThrough.serverFinalReceived(final))
        XCTAssertTrue(passThrough.isServerVerified)

        // A changed password upstream: the old keys fail.
        let changed = SCRAMVerifier.make(password: "changed", salt: Array(repeating: 5, count: 16))
        var other = SCRAMServer(verifier: changed, mockSeed: [1], username: "erin", channelBinding: nil)
        var stale = SCRAMClient(username: "erin", clientKey: keys.clientKey, serverKey: keys.serverKey, channelBinding: .notSupported)
        guard case .sendContinue(let first2) = other.initialResponseReceived(mechanism: stale.mechanism, data: stale.clientFirstMessage()) else { return XCTFail() }
        guard case .fail = other.responseReceived(try stale.serverFirstReceived(first2)) else { return XCTFail("stale keys must fail") }

        // A configured server password wins; so does another upstream role (no pass-through).
        var dora = try machine(.password)
        _ = startup("dora", &dora)
        _ = dora.verifierLookedUp(Self.scram.clientVerifier)
        guard case .connectUpstream(let doraRequest) = password("secret", &dora) else { return XCTFail() }
        XCTAssertEqual(doraRequest.serverPassword?.reveal(), "x")
        // A password line hands the cleartext password on.
        var cleartext = try machine(.password)
        _ = startup("erin", &cleartext)
        _ = cleartext.verifierLookedUp(Self.scram.clientVerifier)
        guard case .connectUpstream(let erinRequest) = password("secret", &cleartext) else { return XCTFail() }
        XCTAssertEqual(erinRequest.serverPassword?.reveal(), "secret")
        XCTAssertFalse(erinRequest.serverPassword?.isSCRAMPassThrough ?? true)
    }

    func testLoginTimeoutWhileWaiting() throws {
        var m = try machine(.scramSHA256)
        guard case .lookUpVerifier = startup("dora", &m) else { return XCTFail() }
        XCTAssertEqual(refusal(m.loginTimedOut())?.message, "canceling authentication due to timeout")
        // A late answer changes nothing.
        guard case .none = m.verifierLookedUp(Self.scram.clientVerifier) else { return XCTFail() }
    }

    func testCacheAnswersWithinTheIntervalOnly() {
        let cache = AuthQueryCache(refreshInterval: .seconds(60))
        let key = AuthQueryCache.Key(entry: "app", dbname: "app", authUser: "lookup", user: "dora")
        let t0 = MonotonicInstant(nanoseconds: 1_000_000_000)
        XCTAssertTrue(cache.answer(for: key, now: t0) == nil)
        cache.store(Self.scram.clientVerifier, for: key, fetchedAt: t0)
        XCTAssertEqual(cache.answer(for: key, now: t0 + .seconds(59)), .some(Self.scram.clientVerifier))
        XCTAssertTrue(cache.answer(for: key, now: t0 + .seconds(60)) == nil, "stale answers are read again")
        let nobody = AuthQueryCache.Key(entry: "app", dbname: "app", authUser: "lookup", user: "nobody")
        cache.store(nil, for: nobody, fetchedAt: t0)
        XCTAssertEqual(cache.answer(for: nobody, now: t0 + .seconds(1)), .some(nil), "negative answers are cached")
    }

    func testCacheStaysBounded() {
        let cache = AuthQueryCache(refreshInterval: .seconds(60))
        let t0 = MonotonicInstant(nanoseconds: 1)
        for index in 0..<(AuthQueryCache.capacity + 5) {
            cache.store(nil, for: .init(entry: "*", dbname: "db\(index)", authUser: "lookup", user: "dora"), fetchedAt: t0)
        }
        XCTAssertLessThanOrEqual(cache.count, AuthQueryCache.capacity)
    }
}

extension SCRAMVerifier {
    var clientVerifier: ClientPasswordVerifier {
        .scramSHA256(iterations: iterations, salt: salt, storedKey: storedKey, serverKey: serverKey)
    }
}
