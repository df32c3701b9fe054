import XCTest
import Wire
import Config
import Auth
import EventLoop
import Logging
import Synchronization
@testable import Proxy

/// Issue 8 items 4–6, pure parts: start-up limits, failed-login records and backoff, log
/// escaping and the repeated-line limiter.
final class StartupLimitsTests: XCTestCase {
    func testTotalAndPerAddressLimits() {
        var admission = StartupAdmission()
        for _ in 0..<3 { XCTAssertNil(admission.admit(address: "10.0.0.1", totalLimit: 5, perAddressLimit: 3)) }
        XCTAssertEqual(admission.admit(address: "10.0.0.1", totalLimit: 5, perAddressLimit: 3), .perAddress(limit: 3))
        XCTAssertNil(admission.admit(address: "10.0.0.2", totalLimit: 5, perAddressLimit: 3))
        // Unix-domain clients (no address) count only towards the total.
        XCTAssertNil(admission.admit(address: nil, totalLimit: 5, perAddressLimit: 3))
        XCTAssertEqual(admission.admit(address: "10.0.0.3", totalLimit: 5, perAddressLimit: 3), .total(limit: 5))
        XCTAssertEqual(admission.total, 5)
        admission.release(address: "10.0.0.1")
        XCTAssertNil(admission.admit(address: "10.0.0.1", totalLimit: 5, perAddressLimit: 3))
        XCTAssertEqual(admission.admit(address: "10.0.0.1", totalLimit: 6, perAddressLimit: 3), .perAddress(limit: 3))
        // 0 = no per-address limit.
        XCTAssertNil(admission.admit(address: "10.0.0.1", totalLimit: 6, perAddressLimit: 0))
    }

    func testReleasedAddressesLeaveTheTable() {
        var admission = StartupAdmission()
        for i in 0..<100 { XCTAssertNil(admission.admit(address: "10.0.0.\(i)", totalLimit: 1000, perAddressLimit: 2)) }
        for i in 0..<100 { admission.release(address: "10.0.0.\(i)") }
        XCTAssertEqual(admission, StartupAdmission())
    }

    func testSlotsReleaseOnceAndOnDrop() {
        let limiter = StartupLimiter()
        guard case .success(let slot) = limiter.admit(address: "a", totalLimit: 2, perAddressLimit: 1) else { return XCTFail() }
        guard case .failure = limiter.admit(address: "a", totalLimit: 2, perAddressLimit: 1) else { return XCTFail() }
        slot.release()
        slot.release()
        XCTAssertEqual(limiter.snapshot.total, 0)
        do {
            guard case .success(let dropped) = limiter.admit(address: "a", totalLimit: 2, perAddressLimit: 1) else { return XCTFail() }
            _ = dropped
        }
        XCTAssertEqual(limiter.snapshot, StartupAdmission(), "a dropped slot gives its place back")
    }

    func testIPv6CountsPerSlash64() {
        XCTAssertEqual(StartupAddressKey.key(forHost: "2001:db8:1:2:aaaa::1", isUnix: false),
                       StartupAddressKey.key(forHost: "2001:db8:1:2:bbbb::7", isUnix: false))
        XCTAssertNotEqual(StartupAddressKey.key(forHost: "2001:db8:1:2::1", isUnix: false),
                          StartupAddressKey.key(forHost: "2001:db8:1:3::1", isUnix: false))
        XCTAssertEqual(StartupAddressKey.key(forHost: "127.0.0.1", isUnix: false), "127.0.0.1")
        XCTAssertEqual(StartupAddressKey.key(forHost: "::ffff:10.1.2.3", isUnix: false), "10.1.2.3")
        XCTAssertNil(StartupAddressKey.key(forHost: "[local]", isUnix: true))
    }

    func testConfigDefaultsAndLimits() throws {
        let defaults = try ConfigLoader.parse("[tls]\nclient_tls = disable\n[databases]\napp = host=/tmp\n", fileName: "t.ini").general
        XCTAssertEqual(defaults.effectiveMaxStartupConnections, 250)
        XCTAssertEqual(defaults.maxStartupConnectionsPerAddress, 50)
        XCTAssertEqual(defaults.startupFirstByteTimeout, .seconds(5))
        XCTAssertNil(defaults.authFailureDelay)
        let set = try ConfigLoader.parse("""
            [portcullis]
            max_client_connections = 100
            max_startup_connections = 40
            max_startup_connections_per_address = 0
            startup_first_byte_timeout = 0
            auth_failure_delay = 2s
            [tls]
            client_tls = disable
            [databases]
            app = host=/tmp
            """, fileName: "t.ini").general
        XCTAssertEqual(set.effectiveMaxStartupConnections, 40)
        XCTAssertEqual(set.maxStartupConnectionsPerAddress, 0)
        XCTAssertNil(set.startupFirstByteTimeout)
        XCTAssertEqual(set.authFailureDelay, .seconds(2))
        XCTAssertThrowsError(try ConfigLoader.parse("""
            [portcullis]
            max_client_connections = 100
            max_startup_connections = 101
            [tls]
            client_tls = disable
            [databases]
            app = host=/tmp
            """, fileName: "t.ini")) { error in
            XCTAssertTrue("\(error)".contains("t.ini:3"), "\(error)")
        }
    }
}

final class AuthenticationFailureTests: XCTestCase {
    func testFailedPasswordIsRecordedWithRuleAndWithoutThePassword() throws {
        let config = try ConfigLoader.parse("""
            [tls]
            client_tls = allow
            client_tls_cert_file = /nonexistent/server.crt
            client_tls_key_file = /nonexistent/server.key
            [databases]
            app = host=127.0.0.1 sslmode=disable
            [identities]
            alice = mode=read-write password='\(SCRAMVerifier.make(password: "right", salt: Array(repeating: 1, count: 16)).text)'
            """, fileName: "t.ini")
        var m = ClientStartupMachine(config: config, transport: .tcp(remoteHost: "10.1.2.3"), mockSeed: [1],
                                     access: ClientAuthenticationTests.FixedRules(rule: ClientAuthRule(method: .password, origin: "/etc/hba.conf:7")))
        _ = m.tlsHandshakeCompleted(serverEndPoint: nil, direct: false, alpnPostgreSQL: false)
        var b = ByteBuffer()
        StartupPacket(protocolMinor: 0, parameters: [.init(name: "user", value: "alice"), .init(name: "database", value: "app")]).encode(into: &b)
        _ = m.bytesReceived(&b)
        var p = ByteBuffer()
        FrontendMessage.passwordMessage("hunter2-secret").encode(into: &p)
        // The SCRAM secret's keys are derived off the loop in the proxy; here, at once.
        guard case .deriveKeys(let derivation, _) = m.bytesReceived(&p) else { return XCTFail("a derivation") }
        let failure = try XCTUnwrap(m.keysDerived(derivation.derive()).authenticationFailure)
        XCTAssertEqual(failure, AuthenticationFailure(remoteHost: "10.1.2.3", user: "alice", database: "app", method: "password",
                                                      ruleOrigin: "/etc/hba.conf:7", sqlState: "28P01",
                                                      message: "password authentication failed for user \"alice\""))
        let line = failure.logMessage + failure.logFields.map { "\($0.0)=\($0.1)" }.joined(separator: " ")
        XCTAssertTrue(line.contains("connection matched /etc/hba.conf:7"), line)
        XCTAssertFalse(line.contains("hunter2"), line)
    }

    /// A login that times out or breaks the protocol mid-exchange is a failed login too.
    func testTimeoutAndProtocolErrorsDuringAuthenticationAreFailures() throws {
        let config = try ConfigLoader.parse("[tls]\nclient_tls = disable\n[databases]\napp = host=/tmp\n", fileName: "t.ini")
        func started() -> ClientStartupMachine {
            var m = ClientStartupMachine(config: config, transport: .tcp(remoteHost: "10.9.9.9"), mockSeed: [1],
                                         access: ClientAuthenticationTests.FixedRules(rule: ClientAuthRule(method: .scramSHA256, origin: "hba:3")))
            var b = ByteBuffer()
            StartupPacket(protocolMinor: 0, parameters: [.init(name: "user", value: "nobody")]).encode(into: &b)
            _ = m.bytesReceived(&b)
            return m
        }
        var timedOut = started()
        let timeout = try XCTUnwrap(timedOut.loginTimedOut().authenticationFailure)
        XCTAssertEqual(timeout.message, "canceling authentication due to timeout")
        XCTAssertEqual(timeout.ruleOrigin, "hba:3")
        var wrongType = started()
        var q = ByteBuffer()
        FrontendMessage.query("SELECT 1").encode(into: &q)
        let failure = try XCTUnwrap(wrongType.bytesReceived(&q).authenticationFailure)
        XCTAssertEqual(failure.sqlState, "08P01")
        XCTAssertEqual(failure.method, "scram-sha-256")
    }

    func testNoMatchingRuleHasNoMethod() throws {
        let config = try ConfigLoader.parse("[tls]\nclient_tls = disable\n[databases]\napp = host=/tmp\n", fileName: "t.ini")
        var m = ClientStartupMachine(config: config, transport: .unixSocket, mockSeed: [1],
                                     access: ClientAuthenticationTests.FixedRules(rule: nil))
        var b = ByteBuffer()
        StartupPacket(protocolMinor: 0, parameters: [.init(name: "user", value: "bob")]).encode(into: &b)
        let failure = try XCTUnwrap(m.bytesReceived(&b).authenticationFailure)
        XCTAssertNil(failure.method)
        XCTAssertNil(failure.ruleOrigin)
        XCTAssertEqual(failure.remoteHost, "[local]")
        XCTAssertTrue(failure.logMessage.hasSuffix("no matching pg_hba.conf entry"))
    }

    func testBackoffDoublesPerAddressUpToTheCapAndIsForgiven() {
        var backoff = AuthFailureBackoff(forgetAfter: .seconds(600), capacity: 3)
        let t0 = MonotonicInstant(nanoseconds: 1_000_000_000)
        let cap = Duration.seconds(1)
        let delays = (0..<6).map { backoff.failed(address: "a", at: t0 + .seconds($0), cap: cap) }
        XCTAssertEqual(delays, [.milliseconds(100), .milliseconds(200), .milliseconds(400), .milliseconds(800), .seconds(1), .seconds(1)])
        XCTAssertEqual(backoff.failed(address: "b", at: t0, cap: cap), .milliseconds(100), "other addresses are not affected")
        backoff.succeeded(address: "a")
        XCTAssertEqual(backoff.failed(address: "a", at: t0 + .seconds(10), cap: cap), .milliseconds(100))
        XCTAssertEqual(backoff.failed(address: "a", at: t0 + .seconds(700), cap: cap), .milliseconds(100), "forgotten after a quiet period")
        for i in 0..<10 { _ = backoff.failed(address: "x\(i)", at: t0 + .seconds(800 + i), cap: cap) }
        XCTAssertEqual(backoff.trackedAddresses, 3, "the table is bounded")
        XCTAssertEqual(AuthFailureBackoff.delay(failures: 1000, cap: .seconds(60)), .seconds(60))
        XCTAssertEqual(AuthFailureBackoff.delay(failures: 3, cap: .zero), .zero)
    }
}

final class LogEscapingTests: XCTestCase {
    func testControlCharactersAndEscapesAreMadeVisible() {
        XCTAssertEqual(LogText.escaped("plain text, ünïcödé"), "plain text, ünïcödé")
        XCTAssertEqual(LogText.escaped("a\nb\r\tc"), "a\\nb\\r\\tc")
        XCTAssertEqual(LogText.escaped("\u{1B}[31mred\u{1B}[0m"), "\\x1B[31mred\\x1B[0m")
        XCTAssertEqual(LogText.escaped("\u{0}\u{7F}\u{85}\u{9B}"), "\\x00\\x7F\\u{0085}\\u{009B}")
        XCTAssertEqual(LogText.escaped("evil\u{202E}txt.exe\u{2028}x"), "evil\\u{202E}txt.exe\\u{2028}x")
        // A literal backslash-n cannot pass for an escaped newline.
        XCTAssertEqual(LogText.escaped("a\\nb"), "a\\\\nb")
        XCTAssertEqual(LogText.escapedMessage("line 1\nline 2\r\u{1B}"), "line 1\n\tline 2\\r\\x1B")
        XCTAssertEqual(LogText.escapedMessage("plain"), "plain")
    }

    func testMetadataValuesCannotPoseAsFields() {
        XCTAssertEqual(LogText.metadataValue("app_ro"), "app_ro")
        XCTAssertEqual(LogText.metadataValue("bob hba_line=trust"), "\"bob hba_line=trust\"")
        XCTAssertEqual(LogText.metadataValue("say \"hi\"\n"), "\"say \\\"hi\\\"\\n\"")
        XCTAssertEqual(LogText.metadataValue(""), "\"\"")
    }

    /// Through the handler the CLI installs: one line per log call whatever the text.
    func testHandlerEscapesMessagesAndMetadata() {
        let recorder = RecordingHandler()
        var logger = Logger(label: "t") { _ in EscapingLogHandler(recorder) }
        logger[metadataKey: "user"] = "x\ny"
        logger.warning("forged\n2026-01-01 FATAL: admin logged in\u{1B}[2K", metadata: ["database": "d b"])
        let event = try? XCTUnwrap(recorder.events.withLock { $0.first })
        XCTAssertEqual(event?.message, "forged\n\t2026-01-01 FATAL: admin logged in\\x1B[2K", "a continuation line starts with a tab")
        XCTAssertEqual(event?.metadata["database"], "\"d b\"")
        XCTAssertEqual(logger[metadataKey: "user"], "x\\ny")
    }
}

final class RepeatedLogLimiterTests: XCTestCase {
    func testBurstThenOneSummaryPerIntervalAndAtTheEnd() {
        var limiter = RepeatedLogLimiter(burst: 3, interval: .seconds(60))
        let t0 = MonotonicInstant(nanoseconds: 5_000_000_000)
        var decisions: [RepeatedLogLimiter.Decision] = []
        for i in 0..<1000 { decisions.append(limiter.occurred(at: t0 + .milliseconds(i))) }
        XCTAssertEqual(decisions.prefix(3), [.log, .log, .log])
        XCTAssertTrue(decisions.dropFirst(3).allSatisfy { $0 == .suppress })
        XCTAssertEqual(limiter.occurred(at: t0 + .seconds(61)), .summary(suppressed: 998, total: 1001))
        XCTAssertEqual(limiter.occurred(at: t0 + .seconds(62)), .suppress)
        XCTAssertEqual(limiter.finish(at: t0 + .seconds(63)), .summary(suppressed: 1, total: 1002))
        XCTAssertNil(limiter.finish(at: t0 + .seconds(64)), "nothing left to report")
    }

    func testQuietSessionsGetNoSummary() {
        var limiter = RepeatedLogLimiter(burst: 3, interval: .seconds(60))
        let t0 = MonotonicInstant(nanoseconds: 1)
        XCTAssertEqual(limiter.occurred(at: t0), .log)
        XCTAssertNil(limiter.finish(at: t0))
    }
}

/// Collects what reaches the inner handler.
final class RecordingHandler: LogHandler, @unchecked Sendable {
    struct Event: Sendable { var message: String; var metadata: [String: String] }
    let events = Mutex<[Event]>([])
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .trace
    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }
    func log(event: LogEvent) {
        let merged = metadata.merging(event.metadata ?? [:]) { $1 }
        events.withLock { $0.append(Event(message: event.message.description, metadata: merged.mapValues { "\($0)" })) }
    }
}
