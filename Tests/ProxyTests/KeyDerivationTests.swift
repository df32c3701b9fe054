import XCTest
import Wire
import Config
@testable import Auth
@testable import EventLoop
@testable import Proxy

/// PBKDF2 never runs inside a start-up machine: where SCRAM keys must be derived the machines
/// ask for it (`.deriveKeys`) and go on when the keys are given (`keysDerived`), so the shell
/// can run the derivation off the loop. A cached derivation is answered at once.
final class KeyDerivationTests: XCTestCase, StartupMachineDriving {
    struct PasswordLine: ClientAccessRules {
        func rule(for attempt: ClientAttempt) -> ClientAuthRule? { ClientAuthRule(method: .password, origin: "t") }
        func mapAllows(map name: String, systemUser: String, databaseUser: String) -> Bool { false }
    }

    static let scram = SCRAMVerifier.make(password: "secret", salt: Array(repeating: 5, count: 16), iterations: 5000)
    static let md5 = MD5Password.hash(user: "legacy", password: "secret")

    func clientMachine() throws -> ClientStartupMachine {
        let config = try ConfigLoader.parse("""
        [portcullis]
        local_auth_method = trust
        [tls]
        client_tls = disable
        [databases]
        app = host=127.0.0.1 port=5432 dbname=app sslmode=disable
        [identities]
        alice = mode=read-write password='\(Self.scram.text)'
        legacy = mode=read-write password='\(Self.md5)'
        """, fileName: "test.ini")
        return ClientStartupMachine(config: config, transport: .tcp(remoteHost: "10.1.2.3"), mockSeed: [9], access: PasswordLine())
    }

    func passwordMessage(_ text: String) -> ByteBuffer {
        var b = ByteBuffer()
        FrontendMessage.passwordMessage(text).encode(into: &b)
        return b
    }

    // MARK: Client side: a cleartext password against a SCRAM verifier

    func testCleartextPasswordAgainstSCRAMVerifierAsksForTheDerivation() throws {
        for (given, accepted) in [("secret", true), ("wrong", false)] {
            var m = try clientMachine()
            guard case .sendBytes = startup("alice", &m) else { return XCTFail("challenge") }
            var bytes = passwordMessage(given)
            guard case .deriveKeys(let derivation, let user) = m.bytesReceived(&bytes) else {
                return XCTFail("the check must be handed out, not computed in the machine")
            }
            XCTAssertEqual(user, "alice")
            XCTAssertEqual(derivation.iterations, 5000, "the verifier's count")
            XCTAssertEqual(derivation.salt, Self.scram.salt)
            XCTAssertTrue(m.isCheckingPassword)
            // Whatever the client sends meanwhile waits.
            var more = passwordMessage("again")
            let before = more.readableBytes
            guard case .none = m.bytesReceived(&more) else { return XCTFail("nothing happens while the keys are derived") }
            XCTAssertEqual(more.readableBytes, before)

            let action = m.keysDerived(derivation.derive())
            if accepted {
                guard case .connectUpstream(let request) = action else { return XCTFail("right password must log in: \(action)") }
                XCTAssertEqual(request.clientUser, "alice")
            } else {
                let fields = action.refusalBytes.flatMap { bytes in messages(bytes).lazy.compactMap { message -> ErrorFields? in
                    if case .errorResponse(let fields) = message { fields } else { nil } }.first }
                XCTAssertEqual(fields?.sqlState, "28P01")
                XCTAssertEqual(fields?.message, "password authentication failed for user \"alice\"")
            }
            // A late answer (or a second one) does nothing.
            guard case .none = m.keysDerived(derivation.derive()) else { return XCTFail("answered once") }
        }
    }

    func testAnMD5SecretIsCheckedAtOnce() throws {
        var m = try clientMachine()
        _ = startup("legacy", &m)
        var bytes = passwordMessage("secret")
        guard case .connectUpstream = m.bytesReceived(&bytes) else { return XCTFail("an md5 hash costs microseconds: no derivation") }
    }

    func testLoginTimeoutWhileTheKeysAreDerived() throws {
        var m = try clientMachine()
        _ = startup("alice", &m)
        var bytes = passwordMessage("secret")
        guard case .deriveKeys = m.bytesReceived(&bytes) else { return XCTFail() }
        guard case .refuseAuthentication(_, let failure) = m.loginTimedOut() else { return XCTFail("a login that never ends fails") }
        XCTAssertEqual(failure.message, "canceling authentication due to timeout")
        guard case .none = m.keysDerived(Self.derive("secret")) else { return XCTFail("the answer after the timeout is dropped") }
    }

    func testNoRoomForTheDerivationTurnsTheClientAway() throws {
        var m = try clientMachine()
        _ = startup("alice", &m)
        var bytes = passwordMessage("secret")
        guard case .deriveKeys = m.bytesReceived(&bytes) else { return XCTFail() }
        guard case .sendAndClose(let out) = m.keysDerived(nil) else { return XCTFail("no keys: no login") }
        XCTAssertEqual(messages(out), [.errorResponse(.error(sqlState: "53300", message: "sorry, too many clients already", severity: "FATAL"))])
    }

    static func derive(_ password: String) -> SCRAMKeys {
        SCRAMKeyDerivation.checking(password: password, against: scram).derive()
    }

    // MARK: Upstream side: the proxy as a SCRAM client

    func target() throws -> DatabaseTarget {
        let config = try ConfigLoader.parse("""
        [tls]
        client_tls = disable
        [databases]
        app = host=127.0.0.1 port=5432 dbname=app sslmode=disable
        """, fileName: "t.ini")
        return try XCTUnwrap(config.databases["app"])
    }

    /// Runs an upstream login up to server-first-message: the machine's answer to it.
    func upToServerFirst(_ m: inout UpstreamStartupMachine, server: inout SCRAMServer) throws -> UpstreamStartupMachine.Action {
        guard case .send = m.connected() else { throw XCTSkip("startup packet") }
        guard case .send(var initial) = m.messageReceived(.authentication(.sasl(mechanisms: ["SCRAM-SHA-256"]))) else {
            XCTFail("SASLInitialResponse"); return .none
        }
        let frame = try XCTUnwrap(try FrameDecoder(maxMessageLength: 1000).peekFrame(in: initial))
        let (mechanism, data) = try FrontendMessage.decodeSASLInitialResponse(frame: frame, from: &initial)
        guard case .sendContinue(let serverFirst) = server.initialResponseReceived(mechanism: mechanism, data: data) else {
            XCTFail("server-first"); return .none
        }
        return m.messageReceived(.authentication(.saslContinue(serverFirst)))
    }

    func finish(_ reply: ByteBuffer, _ m: inout UpstreamStartupMachine, server: inout SCRAMServer) throws {
        var reply = reply
        let frame = try XCTUnwrap(try FrameDecoder(maxMessageLength: 1000).peekFrame(in: reply))
        guard case .sendFinal(let serverFinal) = server.responseReceived(try FrontendMessage.decodeSASLResponse(frame: frame, from: &reply)) else {
            return XCTFail("the proof must satisfy the server")
        }
        guard case .none = m.messageReceived(.authentication(.saslFinal(serverFinal))) else { return XCTFail("server signature") }
    }

    func testUpstreamSCRAMAsksForTheDerivationThenAnswersFromTheCache() throws {
        let verifier = SCRAMVerifier.make(password: "pw", iterations: 6000)
        let cache = SCRAMKeyCache(capacity: 4)
        let purpose = UpstreamStartupMachine.Purpose.session(user: "app_rw", password: Secret("pw"), database: "app", parameters: [])

        var first = UpstreamStartupMachine(target: try target(), purpose: purpose, keyCache: cache)
        var server = SCRAMServer(verifier: verifier, mockSeed: [1], username: "app_rw", channelBinding: nil)
        guard case .deriveKeys(let derivation) = try upToServerFirst(&first, server: &server) else {
            return XCTFail("a cache miss must be handed out, not computed in the machine")
        }
        XCTAssertEqual(derivation.iterations, 6000, "the server's count")
        XCTAssertEqual(derivation.salt, verifier.salt)
        XCTAssertTrue(first.isDerivingKeys)
        XCTAssertEqual(cache.derivationCount, 0, "nothing derived inside the machine")
        // The server may speak meanwhile: a notice is ignored.
        guard case .none = first.messageReceived(.noticeResponse(.error(sqlState: "00000", message: "hi", severity: "NOTICE"))) else {
            return XCTFail("notice")
        }
        guard case .send(let reply) = first.keysDerived(derivation.derive()) else { return XCTFail("SASLResponse") }
        XCTAssertEqual(cache.derivationCount, 1)
        try finish(reply, &first, server: &server)

        // Same password, salt and count: the cached keys answer at once (no thread hop).
        var second = UpstreamStartupMachine(target: try target(), purpose: purpose, keyCache: cache)
        var server2 = SCRAMServer(verifier: verifier, mockSeed: [1], username: "app_rw", channelBinding: nil)
        guard case .send(let reply2) = try upToServerFirst(&second, server: &server2) else { return XCTFail("cache hit answers at once") }
        try finish(reply2, &second, server: &server2)
        XCTAssertEqual(cache.derivationCount, 1)
    }

    func testUpstreamErrorWhileDerivingFailsAndTheLateKeysAreDropped() throws {
        let verifier = SCRAMVerifier.make(password: "pw", iterations: 4096)
        let purpose = UpstreamStartupMachine.Purpose.session(user: "app_rw", password: Secret("pw"), database: "app", parameters: [])
        var m = UpstreamStartupMachine(target: try target(), purpose: purpose, keyCache: SCRAMKeyCache(capacity: 4))
        var server = SCRAMServer(verifier: verifier, mockSeed: [1], username: "app_rw", channelBinding: nil)
        guard case .deriveKeys(let derivation) = try upToServerFirst(&m, server: &server) else { return XCTFail() }
        let timeout = ErrorFields.error(sqlState: "08P01", message: "canceling authentication due to timeout", severity: "FATAL")
        guard case .fail(let fields) = m.messageReceived(.errorResponse(timeout)) else { return XCTFail("the server's error ends it") }
        XCTAssertEqual(fields, timeout)
        guard case .none = m.keysDerived(derivation.derive()) else { return XCTFail("late keys do nothing") }

        // Anything but an error or a notice while the keys are derived is a protocol violation.
        var other = UpstreamStartupMachine(target: try target(), purpose: purpose, keyCache: SCRAMKeyCache(capacity: 4))
        var server2 = SCRAMServer(verifier: verifier, mockSeed: [1], username: "app_rw", channelBinding: nil)
        guard case .deriveKeys = try upToServerFirst(&other, server: &server2) else { return XCTFail() }
        guard case .fail = other.messageReceived(.authentication(.ok)) else { return XCTFail("Ok before our proof") }
    }

    // MARK: The derivation threads

    func testLanesTakeTurnsBetweenRequesters() {
        var lane = KeyDerivationPool.LaneQueue()
        for (key, requester) in [([1], "a"), ([2], "a"), ([3], "a"), ([4], "b"), ([5], "c")] as [([UInt8], String)] {
            lane.append(key, requester: requester)
        }
        lane.remove([5], requester: "c")
        XCTAssertEqual(lane.count, 4)
        var order: [[UInt8]] = []
        while let key = lane.next() { order.append(key) }
        XCTAssertEqual(order, [[1], [4], [2], [3]], "b's one derivation waits for one of a's, not all three")
        XCTAssertEqual(lane.count, 0)
    }

    func testCountsAbovePostgreSQLsDefaultGoToTheirOwnLane() {
        XCTAssertEqual(KeyDerivationPool.Lane(iterations: 4096), .everyday)
        XCTAssertEqual(KeyDerivationPool.Lane(iterations: KeyDerivationPool.everydayIterationLimit), .everyday)
        XCTAssertEqual(KeyDerivationPool.Lane(iterations: 10_000_000), .costly)
    }

    /// Two askers of the same derivation (two loops, a burst of connects) share one run; each
    /// gets the keys through its mailbox.
    func testIdenticalDerivationsShareOneRun() throws {
        let pool = KeyDerivationPool()
        let cache = SCRAMKeyCache(capacity: 4)
        let mailbox = try LoopMailbox()
        let derivation: SCRAMKeyDerivation
        switch cache.lookup(password: Array("pw".utf8), salt: [1, 2, 3], iterations: 200_000) {
        case .found: return XCTFail("empty cache")
        case .missing(let missing): derivation = missing
        }
        XCTAssertTrue(pool.submit(derivation, requester: "r", ticket: 1, mailbox: mailbox))
        XCTAssertTrue(pool.submit(derivation, requester: "r", ticket: 2, mailbox: mailbox))
        var answers: [UInt64: SCRAMKeys] = [:]
        let deadline = ContinuousClock.now + .seconds(60)
        while answers.count < 2 && ContinuousClock.now < deadline {
            for case let done as LookupDone in mailbox.drain() { answers[done.ticket] = done.value as? SCRAMKeys }
            usleep(10_000)
        }
        XCTAssertEqual(Set(answers.keys), [1, 2])
        XCTAssertEqual(answers[1]?.clientKey, answers[2]?.clientKey)
        XCTAssertEqual(cache.derivationCount, 1, "one run for both")
    }

    /// A running derivation whose only asker gave up stops, freeing its lane: a role's INT_MAX
    /// count (tens of minutes of PBKDF2) no longer holds the costly lane, and a core, after its
    /// login timed out. A new asker of the same inputs gets a run of its own.
    func testARunningDerivationNobodyWaitsForStops() throws {
        let pool = KeyDerivationPool()
        let mailbox = try LoopMailbox()
        func derivation(_ password: String, iterations: Int) throws -> SCRAMKeyDerivation {
            guard case .missing(let missing) = SCRAMKeyCache(capacity: 4).lookup(password: Array(password.utf8), salt: [7], iterations: iterations) else {
                throw XCTSkip("empty cache")
            }
            return missing
        }
        let endless = try derivation("attacker", iterations: Int(Int32.max))
        XCTAssertTrue(pool.submit(endless, requester: "attacker", ticket: 1, mailbox: mailbox))
        // Wait until it runs (the lane's queue is empty again).
        let started = ContinuousClock.now + .seconds(60)
        while pool.queued(.costly) > 0 && ContinuousClock.now < started { usleep(1_000) }
        XCTAssertEqual(pool.queued(.costly), 0, "the derivation started")
        pool.cancel(ticket: 1, mailbox: mailbox)
        // The next costly derivation can only run once the lane's thread is free.
        let next = try derivation("victim", iterations: KeyDerivationPool.everydayIterationLimit + 1)
        XCTAssertTrue(pool.submit(next, requester: "victim", ticket: 2, mailbox: mailbox))
        XCTAssertTrue(pool.submit(endless, requester: "attacker", ticket: 3, mailbox: mailbox), "a new asker is queued anew")
        var answered: Set<UInt64> = []
        let deadline = ContinuousClock.now + .seconds(60)
        while !answered.contains(2) && ContinuousClock.now < deadline {
            for case let done as LookupDone in mailbox.drain() { answered.insert(done.ticket) }
            usleep(10_000)
        }
        XCTAssertEqual(answered, [2], "the victim's derivation ran; the stopped one answered nobody")
        pool.cancel(ticket: 3, mailbox: mailbox)
    }
}
