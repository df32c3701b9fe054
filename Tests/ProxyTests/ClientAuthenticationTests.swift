import XCTest
import Wire
import Config
import Auth
import TLS
@testable import Proxy

/// Authentication methods chosen by a pg_hba.conf rule, with PostgreSQL's own messages
/// (src/backend/libpq/auth.c).
final class ClientAuthenticationTests: XCTestCase, StartupMachineDriving {
    /// A fixed rule for every attempt and a map table, standing in for pg_hba/pg_ident.
    struct FixedRules: ClientAccessRules {
        var rule: ClientAuthRule?
        var map: [String: [(system: String, user: String)]] = [:]
        func rule(for attempt: ClientAttempt) -> ClientAuthRule? { rule }
        func mapAllows(map name: String, systemUser: String, databaseUser: String) -> Bool {
            map[name, default: []].contains { $0.system == systemUser && $0.user == databaseUser }
        }
    }

    static let scram = SCRAMVerifier.make(password: "secret", salt: Array(repeating: 3, count: 16))
    static let md5 = MD5Password.hash(user: "legacy", password: "secret")
    let salt: [UInt8] = [1, 2, 3, 4]
    let agentCert = PeerCertificateSubject(commonName: "agent", distinguishedName: "CN=agent,O=Portcullis Dev")

    func config() throws -> PortcullisConfig {
        try ConfigLoader.parse("""
        [portcullis]
        local_auth_method = trust
        [tls]
        client_tls = allow
        client_tls_cert_file = /nonexistent/server.crt
        client_tls_key_file = /nonexistent/server.key
        [databases]
        app = host=127.0.0.1 port=5432 dbname=app sslmode=disable
        [identities]
        alice = mode=read-write password='\(Self.scram.text)'
        legacy = mode=read-write password='\(Self.md5)'
        agent = mode=read-only
        """, fileName: "test.ini")
    }

    func machine(_ rule: ClientAuthRule?, tls: PeerCertificateSubject?? = .none,
                 map: [String: [(system: String, user: String)]] = [:]) throws -> ClientStartupMachine {
        var m = ClientStartupMachine(config: try config(), transport: .tcp(remoteHost: "10.1.2.3"), mockSeed: [9],
                                     access: FixedRules(rule: rule, map: map), md5Salt: salt)
        if case .some(let certificate) = tls {
            _ = m.tlsHandshakeCompleted(serverEndPoint: nil, direct: false, alpnPostgreSQL: false, peerCertificate: certificate)
        }
        return m
    }

    func fatal(_ action: ClientStartupMachine.Action, file: StaticString = #filePath, line: UInt = #line) -> ErrorFields? {
        guard let bytes = action.refusalBytes else { XCTFail("expected a refusal, got \(action)", file: file, line: line); return nil }
        for case .errorResponse(let fields) in messages(bytes) { return fields }
        return nil
    }

    func testNoMatchingRuleAndRejectUsePostgreSQLsWording() throws {
        var m = try machine(nil, tls: .some(nil))
        XCTAssertEqual(fatal(startup("alice", &m))?.message,
                       "no pg_hba.conf entry for host \"10.1.2.3\", user \"alice\", database \"app\", SSL encryption")
        var r = try machine(ClientAuthRule(method: .reject, origin: "t"))
        let fields = fatal(startup("alice", &r))
        XCTAssertEqual(fields?.message, "pg_hba.conf rejects connection for host \"10.1.2.3\", user \"alice\", database \"app\", no encryption")
        XCTAssertEqual(fields?.sqlState, "28000")
    }

    func testMD5WithAnMD5SecretChallengesAndChecks() throws {
        var m = try machine(ClientAuthRule(method: .md5, origin: "t"))
        guard case .sendBytes(let challenge) = startup("legacy", &m) else { return XCTFail() }
        XCTAssertEqual(messages(challenge), [.authentication(.md5Password(salt: salt))])
        guard case .connectUpstream = password(MD5Password.response(storedHash: Self.md5, salt: salt), &m) else {
            return XCTFail("right md5 response")
        }
        var wrong = try machine(ClientAuthRule(method: .md5, origin: "t"))
        _ = startup("legacy", &wrong)
        let fields = fatal(password(MD5Password.response(storedHash: MD5Password.hash(user: "legacy", password: "nope"), salt: salt), &wrong))
        XCTAssertEqual(fields?.sqlState, "28P01")
        XCTAssertEqual(fields?.message, "password authentication failed for user \"legacy\"")
    }

    /// auth.c CheckPWChallengeAuth: SCRAM secrets and unknown users get SCRAM on md5 lines.
    func testMD5LineWithSCRAMSecretOrUnknownUserUsesSCRAM() throws {
        for user in ["alice", "nobody"] {
            var m = try machine(ClientAuthRule(method: .md5, origin: "t"))
            guard case .sendBytes(let out) = startup(user, &m),
                  case .authentication(.sasl(let mechanisms))? = messages(out).first else { return XCTFail(user) }
            XCTAssertEqual(mechanisms, ["SCRAM-SHA-256"], user)
        }
    }

    /// As PostgreSQL (auth.c CheckPasswordAuth): on plaintext TCP, TLS and the Unix socket
    /// alike; the guard against cleartext over TCP is the load-time warning.
    func testCleartextPasswordOnEveryTransport() throws {
        var unix = ClientStartupMachine(config: try config(), transport: .unixSocket, mockSeed: [9],
                                        access: FixedRules(rule: ClientAuthRule(method: .password, origin: "t"), map: [:]), md5Salt: salt)
        guard case .sendBytes(let overSocket) = startup("alice", &unix) else { return XCTFail("unix socket") }
        XCTAssertEqual(messages(overSocket), [.authentication(.cleartextPassword)])
        guard case .connectUpstream = password("secret", &unix) else { return XCTFail("alice over the socket") }

        for (user, pass, ok, tls) in [("alice", "secret", true, false), ("alice", "wrong", false, false), ("nobody", "secret", false, false),
                                      ("alice", "secret", true, true), ("legacy", "secret", true, true), ("alice", "wrong", false, true),
                                      ("nobody", "secret", false, true)] {
            var m = try machine(ClientAuthRule(method: .password, origin: "t"), tls: tls ? .some(nil) : .none)
            guard case .sendBytes(let out) = startup(user, &m) else { return XCTFail(user) }
            XCTAssertEqual(messages(out), [.authentication(.cleartextPassword)])
            let action = password(pass, &m)
            if ok {
                guard case .connectUpstream = action else { return XCTFail("\(user) should get in (tls: \(tls))") }
            } else {
                XCTAssertEqual(fatal(action)?.message, "password authentication failed for user \"\(user)\"")
                XCTAssertEqual(fatal(action)?.sqlState, "28P01")
            }
        }
    }

    func testCertMethodMatchesCommonNameOrMap() throws {
        var exact = try machine(ClientAuthRule(method: .cert, origin: "t"), tls: .some(agentCert))
        guard case .connectUpstream(let request) = startup("agent", &exact) else { return XCTFail("CN = user") }
        XCTAssertEqual(request.mode, .readOnly)

        var other = try machine(ClientAuthRule(method: .cert, origin: "t"), tls: .some(agentCert))
        let fields = fatal(startup("alice", &other))
        XCTAssertEqual(fields?.message, "certificate authentication failed for user \"alice\"")
        XCTAssertEqual(fields?.sqlState, "28000")

        let mapped = ClientAuthRule(method: .cert, mapName: "agents", origin: "t")
        var viaMap = try machine(mapped, tls: .some(agentCert), map: ["agents": [("agent", "alice")]])
        guard case .connectUpstream = startup("alice", &viaMap) else { return XCTFail("map allows agent → alice") }

        let byDN = ClientAuthRule(method: .cert, certificateName: .distinguishedName, mapName: "dn", origin: "t")
        var dn = try machine(byDN, tls: .some(agentCert), map: ["dn": [("CN=agent,O=Portcullis Dev", "agent")]])
        guard case .connectUpstream = startup("agent", &dn) else { return XCTFail("DN through map") }

        var noCert = try machine(ClientAuthRule(method: .cert, origin: "t"), tls: .some(nil))
        XCTAssertEqual(fatal(startup("agent", &noCert))?.message, "connection requires a valid client certificate")
    }

    func testClientCertOptionsOnPasswordLines() throws {
        var verifyCA = try machine(ClientAuthRule(method: .trust, clientCertificate: .verifyCA, origin: "t"), tls: .some(nil))
        XCTAssertEqual(fatal(startup("alice", &verifyCA))?.message, "connection requires a valid client certificate")

        var verifyCAWithCert = try machine(ClientAuthRule(method: .trust, clientCertificate: .verifyCA, origin: "t"), tls: .some(agentCert))
        guard case .connectUpstream = startup("alice", &verifyCAWithCert) else { return XCTFail("any verified cert") }

        // verify-full: the password is right but the certificate names someone else.
        var full = try machine(ClientAuthRule(method: .password, clientCertificate: .verifyFull, origin: "t"), tls: .some(agentCert))
        _ = startup("alice", &full)
        let fields = fatal(password("secret", &full))
        XCTAssertEqual(fields?.sqlState, "28P01")
        XCTAssertEqual(fields?.message, "password authentication failed for user \"alice\"")

        // trust + verify-full with someone else's certificate: auth_failed's trust text.
        var trustFull = try machine(ClientAuthRule(method: .trust, clientCertificate: .verifyFull, origin: "t"), tls: .some(agentCert))
        let trustFields = fatal(startup("alice", &trustFull))
        XCTAssertEqual(trustFields?.message, "\"trust\" authentication failed for user \"alice\"")
        XCTAssertEqual(trustFields?.sqlState, "28000")

        var match = try machine(ClientAuthRule(method: .password, clientCertificate: .verifyFull, origin: "t"), tls: .some(agentCert))
        _ = startup("agent", &match)
        XCTAssertEqual(fatal(password("secret", &match))?.sqlState, "28P01", "agent has no password")
    }

    /// A trust login of a user who is no identity, whose upstream wants a password Portcullis
    /// lacks, gets PostgreSQL's answer for a role outside its catalog; a configured identity
    /// keeps the configuration error.
    func testTrustLoginOfAnUnknownRoleSaysTheRoleDoesNotExist() throws {
        let missing = { (user: String) in
            UpstreamStartupMachine.connectionError(database: "app", reason: "the server requested SCRAM authentication, but no server_password is configured for user \"\(user)\"")
        }
        var unknown = try machine(ClientAuthRule(method: .trust, origin: "t"), tls: .some(nil))
        guard case .connectUpstream = startup("nosuch", &unknown) else { return XCTFail("trust lets nosuch in") }
        let fields = fatal(unknown.upstreamFailed(missing("nosuch")))
        XCTAssertEqual(fields?.message, "role \"nosuch\" does not exist")
        XCTAssertEqual(fields?.sqlState, "28000")

        var known = try machine(ClientAuthRule(method: .trust, origin: "t"), tls: .some(nil))
        guard case .connectUpstream = startup("alice", &known) else { return XCTFail("trust lets alice in") }
        XCTAssertEqual(fatal(known.upstreamFailed(missing("alice")))?.sqlState, "08006")

        var other = try machine(ClientAuthRule(method: .trust, origin: "t"), tls: .some(nil))
        _ = startup("nosuch", &other)
        let refused = ErrorFields.error(sqlState: "53300", message: "sorry, too many clients already", severity: "FATAL")
        XCTAssertEqual(fatal(other.upstreamFailed(refused))?.message, "sorry, too many clients already")
    }

    /// auth.c auth_peer: the Unix socket's peer user is the system user, mapped or equal.
    func testPeerUsesTheSocketPeerUserAndMaps() throws {
        func peerMachine(_ rule: ClientAuthRule, peerUser: String?, map: [String: [(system: String, user: String)]] = [:]) throws -> ClientStartupMachine {
            ClientStartupMachine(config: try config(), transport: .unixSocket, mockSeed: [9],
                                 access: FixedRules(rule: rule, map: map), md5Salt: salt, peerUser: peerUser)
        }
        var same = try peerMachine(ClientAuthRule(method: .peer, origin: "t"), peerUser: "alice")
        guard case .connectUpstream = startup("alice", &same) else { return XCTFail("peer user = requested user") }

        var other = try peerMachine(ClientAuthRule(method: .peer, origin: "t"), peerUser: "root")
        let fields = fatal(startup("alice", &other))
        XCTAssertEqual(fields?.message, "Peer authentication failed for user \"alice\"")
        XCTAssertEqual(fields?.sqlState, "28000")

        var mapped = try peerMachine(ClientAuthRule(method: .peer, mapName: "os", origin: "t"), peerUser: "root",
                                     map: ["os": [("root", "alice")]])
        guard case .connectUpstream = startup("alice", &mapped) else { return XCTFail("map allows root -> alice") }

        var unknown = try peerMachine(ClientAuthRule(method: .peer, origin: "t"), peerUser: nil)
        XCTAssertEqual(fatal(startup("alice", &unknown))?.sqlState, "28000", "no peer credentials: refused")
    }
}
