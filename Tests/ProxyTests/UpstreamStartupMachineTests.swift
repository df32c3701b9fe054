import XCTest
import Wire
import Config
import Auth
@testable import Proxy

final class UpstreamStartupMachineTests: XCTestCase {
    func target(_ mode: UpstreamSSLMode, host: String = "127.0.0.1") throws -> DatabaseTarget {
        let config = try ConfigLoader.parse("""
        [tls]
        client_tls = disable
        [databases]
        app = host=\(host) port=5432 dbname=app sslmode=\(mode.rawValue) \(mode == .disable ? "" : "sslrootcert=/x/ca.crt")
        """, fileName: "t.ini")
        return config.databases["app"]!
    }

    func session() -> UpstreamStartupMachine.Purpose {
        .session(user: "app_rw", password: Secret("pw"), database: "app", parameters: [])
    }

    func testNoDowngradeWhenServerRefusesTLS() throws {
        for mode in [UpstreamSSLMode.require, .verifyCA, .verifyFull] {
            var m = UpstreamStartupMachine(target: try target(mode), purpose: session())
            guard case .send = m.connected() else { return XCTFail() }
            guard case .fail(let fields) = m.sslResponseReceived(UInt8(ascii: "N"), trailingBytes: false) else { return XCTFail("\(mode)") }
            XCTAssertEqual(fields.sqlState, "08006")
            XCTAssertTrue(fields.message!.contains("server does not support SSL, but SSL was required"))
        }
    }

    func testBytesAfterSIsAViolation() throws {
        var m = UpstreamStartupMachine(target: try target(.verifyFull), purpose: session())
        _ = m.connected()
        guard case .fail(let fields) = m.sslResponseReceived(UInt8(ascii: "S"), trailingBytes: true) else { return XCTFail() }
        XCTAssertTrue(fields.message!.contains("unencrypted data after SSL response"))
    }

    func testSCRAMAgainstRealVerifierAndServerSignatureRequired() throws {
        var m = UpstreamStartupMachine(target: try target(.verifyFull), purpose: session())
        _ = m.connected()
        guard case .startTLS = m.sslResponseReceived(UInt8(ascii: "S"), trailingBytes: false) else { return XCTFail() }
        guard case .send = m.tlsEstablished(serverEndPoint: [4, 5, 6]) else { return XCTFail("startup packet") }
        guard case .send(var initial) = m.messageReceived(.authentication(.sasl(mechanisms: ["SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"]))) else { return XCTFail() }
        let frame = try FrameDecoder(maxMessageLength: 1000).peekFrame(in: initial)!
        let (mechanism, data) = try FrontendMessage.decodeSASLInitialResponse(frame: frame, from: &initial)
        XCTAssertEqual(mechanism, "SCRAM-SHA-256-PLUS", "channel binding is used when the server offers it over TLS")
        var server = SCRAMServer(verifier: SCRAMVerifier.make(password: "pw"), mockSeed: [1], username: "app_rw", channelBinding: [4, 5, 6])
        guard case .sendContinue(let serverFirst) = server.initialResponseReceived(mechanism: mechanism, data: data) else { return XCTFail() }
        var continued = m.messageReceived(.authentication(.saslContinue(serverFirst)))
        // A new salt: the keys are derived (off the loop in the proxy; here, at once).
        if case .deriveKeys(let derivation) = continued { continued = m.keysDerived(derivation.derive()) }
        guard case .send(var reply) = continued else { return XCTFail() }
        let f2 = try FrameDecoder(maxMessageLength: 1000).peekFrame(in: reply)!
        guard case .sendFinal(let serverFinal) = server.responseReceived(try FrontendMessage.decodeSASLResponse(frame: f2, from: &reply)) else { return XCTFail() }
        // A server that skips the final signature and says Ok is not trusted.
        var skipping = m
        guard case .fail = skipping.messageReceived(.authentication(.ok)) else { return XCTFail("Ok before SASLFinal must fail") }
        guard case .none = m.messageReceived(.authentication(.saslFinal(serverFinal))) else { return XCTFail() }
        guard case .none = m.messageReceived(.authentication(.ok)) else { return XCTFail() }
        _ = m.messageReceived(.noticeResponse(.error(sqlState: "00000", message: "first", severity: "DEBUG")))
        _ = m.messageReceived(.parameterStatus(name: "DateStyle", value: "ISO, MDY"))
        _ = m.messageReceived(.noticeResponse(.error(sqlState: "00000", message: "second", severity: "DEBUG")))
        _ = m.messageReceived(.backendKeyData(processID: 99, secretKey: [1, 2, 3, 4]))
        guard case .ready(let params, let notices, let pid, let key) = m.messageReceived(.readyForQuery(.idle)) else { return XCTFail() }
        XCTAssertEqual(params.map(\.0), ["DateStyle"])
        XCTAssertEqual(notices.map(\.afterParameters), [0, 1], "notices keep their place among the parameters")
        XCTAssertEqual(notices.map(\.fields.message), ["first", "second"])
        XCTAssertEqual(pid, 99)
        XCTAssertEqual(key, [1, 2, 3, 4])
    }

    func testCleartextPasswordNeverSentWithoutTLS() throws {
        var m = UpstreamStartupMachine(target: try target(.disable), purpose: session())
        guard case .send = m.connected() else { return XCTFail() }
        guard case .fail(let fields) = m.messageReceived(.authentication(.cleartextPassword)) else { return XCTFail() }
        XCTAssertTrue(fields.message!.contains("refusing to send it"))
    }

    func testServerErrorDuringStartupIsPassedThrough() throws {
        var m = UpstreamStartupMachine(target: try target(.disable), purpose: session())
        _ = m.connected()
        let serverError = ErrorFields.error(sqlState: "3D000", message: "database \"app\" does not exist", severity: "FATAL")
        guard case .fail(let fields) = m.messageReceived(.errorResponse(serverError)) else { return XCTFail() }
        XCTAssertEqual(fields, serverError)
    }

    func testCancelSendsCancelRequestAfterTLS() throws {
        var m = UpstreamStartupMachine(target: try target(.verifyFull), purpose: .cancel(processID: 42, secretKey: [9, 9, 9, 9]))
        _ = m.connected()
        _ = m.sslResponseReceived(UInt8(ascii: "S"), trailingBytes: false)
        guard case .sendAndFinish(var bytes) = m.tlsEstablished(serverEndPoint: nil) else { return XCTFail() }
        XCTAssertEqual(try StartupDecoder.decode(&bytes), .cancelRequest(processID: 42, secretKey: [9, 9, 9, 9]))
    }

    /// SCRAM pass-through keys (auth_query) answer SCRAM with channel binding; a server that
    /// asks for md5 or a cleartext password gets nothing (the keys are no password).
    func testSCRAMPassThroughKeysAnswerOnlySCRAM() throws {
        let verifier = SCRAMVerifier.make(password: "pw")
        let keys = SCRAMKeysForTest(password: "pw", verifier: verifier)
        let secret = Secret(scramClientKey: keys.clientKey, serverKey: verifier.serverKey)
        let purpose = UpstreamStartupMachine.Purpose.session(user: "app_rw", password: secret, database: "app", parameters: [])
        var m = UpstreamStartupMachine(target: try target(.verifyFull), purpose: purpose)
        _ = m.connected()
        _ = m.sslResponseReceived(UInt8(ascii: "S"), trailingBytes: false)
        _ = m.tlsEstablished(serverEndPoint: [4, 5, 6])
        guard case .send(var initial) = m.messageReceived(.authentication(.sasl(mechanisms: ["SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"]))) else { return XCTFail() }
        let frame = try FrameDecoder(maxMessageLength: 1000).peekFrame(in: initial)!
        let (mechanism, data) = try FrontendMessage.decodeSASLInitialResponse(frame: frame, from: &initial)
        var server = SCRAMServer(verifier: verifier, mockSeed: [1], username: "app_rw", channelBinding: [4, 5, 6])
        guard case .sendContinue(let serverFirst) = server.initialResponseReceived(mechanism: mechanism, data: data) else { return XCTFail() }
        guard case .send(var reply) = m.messageReceived(.authentication(.saslContinue(serverFirst))) else { return XCTFail() }
        let f2 = try FrameDecoder(maxMessageLength: 1000).peekFrame(in: reply)!
        guard case .sendFinal(let serverFinal) = server.responseReceived(try FrontendMessage.decodeSASLResponse(frame: f2, from: &reply)) else {
            return XCTFail("the pass-through proof must satisfy the server")
        }
        guard case .none = m.messageReceived(.authentication(.saslFinal(serverFinal))) else { return XCTFail("server signature") }

        for request in [AuthenticationRequest.md5Password(salt: [1, 2, 3, 4]), .cleartextPassword] {
            var other = UpstreamStartupMachine(target: try target(.verifyFull), purpose: purpose)
            _ = other.connected()
            _ = other.sslResponseReceived(UInt8(ascii: "S"), trailingBytes: false)
            _ = other.tlsEstablished(serverEndPoint: nil)
            guard case .fail(let fields) = other.messageReceived(.authentication(request)) else { return XCTFail("\(request)") }
            XCTAssertTrue(fields.message?.contains("SCRAM pass-through") ?? false, "\(fields)")
        }
    }
}

/// ClientKey from a password, as a client that knows it would derive it (RFC 5802 section 3).
private struct SCRAMKeysForTest {
    let clientKey: [UInt8]
    init(password: String, verifier: SCRAMVerifier) {
        let salted = Crypto.pbkdf2SHA256(password: Array(password.utf8), salt: verifier.salt, iterations: verifier.iterations)
        clientKey = Crypto.hmacSHA256(key: salted, data: Array("Client Key".utf8))
    }
}
