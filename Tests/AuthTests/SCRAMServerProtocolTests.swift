import XCTest
@testable import Auth

/// The server's answers to misbehaving clients, checked against PostgreSQL's texts.
final class SCRAMServerProtocolTests: XCTestCase {
    let cbHash = Crypto.sha256(bytes("certificate"))

    func server(tls: Bool = false, verifier: SCRAMVerifier? = .make(password: "pw", salt: [1, 2, 3], iterations: 1)) -> SCRAMServer {
        SCRAMServer(verifier: verifier, mockSeed: [], username: "alice", channelBinding: tls ? cbHash : nil,
                    serverNonce: "SNONCE")
    }

    func firstFailure(_ message: String, mechanism: String = "SCRAM-SHA-256", tls: Bool = false,
                      file: StaticString = #filePath, line: UInt = #line) -> SCRAMFailure? {
        var server = server(tls: tls)
        let action = server.initialResponseReceived(mechanism: mechanism, data: bytes(message))
        return failure(action, file: file, line: line)
    }

    static func malformed(_ detail: String) -> SCRAMFailure {
        SCRAMFailure(sqlState: "08P01", message: "malformed SCRAM message", detail: detail)
    }

    func testMechanismSelection() {
        let invalid = SCRAMFailure(sqlState: "08P01", message: "client selected an invalid SASL authentication mechanism")
        // -PLUS without TLS was never offered.
        XCTAssertEqual(firstFailure("p=tls-server-end-point,,n=,r=abc", mechanism: "SCRAM-SHA-256-PLUS"), invalid)
        XCTAssertEqual(firstFailure("n,,n=,r=abc", mechanism: "SCRAM-SHA-1"), invalid)
        XCTAssertEqual(firstFailure("n,,n=,r=abc", mechanism: "scram-sha-256"), invalid)
        var tlsServer = server(tls: true)
        XCTAssertEqual(continuePayload(tlsServer.initialResponseReceived(mechanism: "SCRAM-SHA-256-PLUS",
                                                                         data: bytes("p=tls-server-end-point,,n=,r=abc"))),
                       bytes("r=abcSNONCE,s=AQID,i=1"))
    }

    func testChannelBindingFlagMismatches() {
        XCTAssertEqual(firstFailure("n,,n=,r=abc", mechanism: "SCRAM-SHA-256-PLUS", tls: true),
                       Self.malformed("The client selected SCRAM-SHA-256-PLUS, but the SCRAM message does not include channel binding data."))
        XCTAssertEqual(firstFailure("y,,n=,r=abc", mechanism: "SCRAM-SHA-256-PLUS", tls: true),
                       Self.malformed("The client selected SCRAM-SHA-256-PLUS, but the SCRAM message does not include channel binding data."))
        XCTAssertEqual(firstFailure("p=tls-server-end-point,,n=,r=abc", mechanism: "SCRAM-SHA-256", tls: true),
                       Self.malformed("The client selected SCRAM-SHA-256 without channel binding, but the SCRAM message includes channel binding data."))
        // "y" while we offered -PLUS: the offer was stripped on the way (downgrade attack).
        XCTAssertEqual(firstFailure("y,,n=,r=abc", tls: true),
                       SCRAMFailure(sqlState: "28000", message: "SCRAM channel binding negotiation error",
                                    detail: "The client supports SCRAM channel binding but thinks the server does not.  However, this server does support channel binding."))
        XCTAssertEqual(firstFailure("p=tls-unique,,n=,r=abc", mechanism: "SCRAM-SHA-256-PLUS", tls: true),
                       SCRAMFailure(sqlState: "08P01", message: "unsupported SCRAM channel-binding type \"tls-unique\""))
    }

    func testYFlagWithoutTLSSucceeds() {
        var server = server()
        XCTAssertEqual(server.initialResponseReceived(mechanism: "SCRAM-SHA-256", data: bytes("y,,n=,r=abc")),
                       .sendContinue(bytes("r=abcSNONCE,s=AQID,i=1")))
    }

    func testMalformedClientFirst() {
        XCTAssertEqual(firstFailure(""), Self.malformed("The message is empty."))
        XCTAssertEqual(firstFailure("n,,n=,r=a\u{0}b"), Self.malformed("Message length does not match input length."))
        XCTAssertEqual(firstFailure("x,,n=,r=abc"), Self.malformed("Unexpected channel-binding flag \"'x'\"."))
        XCTAssertEqual(firstFailure("\u{1},,n=,r=abc"), Self.malformed("Unexpected channel-binding flag \"0x01\"."))
        XCTAssertEqual(firstFailure("n;,n=,r=abc"), Self.malformed("Comma expected, but found character \"';'\"."))
        XCTAssertEqual(firstFailure("n,x,n=,r=abc"), Self.malformed("Unexpected attribute \"'x'\" in client-first-message."))
        XCTAssertEqual(firstFailure("n,,r=abc"), Self.malformed("Expected attribute \"n\" but found \"'r'\"."))
        XCTAssertEqual(firstFailure("n,,n=,"), Self.malformed("Expected attribute \"r\" but found \"0x00\"."))
        XCTAssertEqual(firstFailure("n,,n,r=abc"), Self.malformed("Expected character \"=\" for attribute \"n\"."))
        XCTAssertEqual(firstFailure("n,,n=,r=abc,1=x"), Self.malformed("Attribute expected, but found invalid character \"'1'\"."))
        XCTAssertEqual(firstFailure("n,,n=,r=ab\u{7f}c"),
                       SCRAMFailure(sqlState: "08P01", message: "non-printable characters in SCRAM nonce"))
        XCTAssertEqual(firstFailure("n,a=bob,n=,r=abc"),
                       SCRAMFailure(sqlState: "0A000", message: "client uses authorization identity, but it is not supported"))
        XCTAssertEqual(firstFailure("n,,m=ext,n=,r=abc"),
                       SCRAMFailure(sqlState: "0A000", message: "client requires an unsupported SCRAM extension"))
    }

    func testClientFirstExtensionsAreIgnored() {
        var server = server()
        XCTAssertEqual(server.initialResponseReceived(mechanism: "SCRAM-SHA-256", data: bytes("n,,n=someone,r=abc,x=1,y=2")),
                       .sendContinue(bytes("r=abcSNONCE,s=AQID,i=1")))
    }

    /// A server that has sent server-first for client nonce "abc".
    func afterFirst(gs2: String = "n,,", mechanism: String = "SCRAM-SHA-256", tls: Bool = false) -> SCRAMServer {
        var server = server(tls: tls)
        _ = continuePayload(server.initialResponseReceived(mechanism: mechanism, data: bytes(gs2 + "n=,r=abc")))
        return server
    }

    func finalFailure(_ message: String, server: SCRAMServer? = nil,
                      file: StaticString = #filePath, line: UInt = #line) -> SCRAMFailure? {
        var server = server ?? afterFirst()
        return failure(server.responseReceived(bytes(message)), file: file, line: line)
    }

    let proof = Base64.encode([UInt8](repeating: 1, count: 32))

    func testMalformedClientFinal() {
        XCTAssertEqual(finalFailure(""), Self.malformed("The message is empty."))
        XCTAssertEqual(finalFailure("r=abcSNONCE,p=\(proof)"), Self.malformed("Expected attribute \"c\" but found \"'r'\"."))
        XCTAssertEqual(finalFailure("c=biws,r=abcSNONCE"), Self.malformed("Attribute expected, but found end of string."))
        XCTAssertEqual(finalFailure("c=biws,r=abcSNONCE,p=AAAA"), Self.malformed("Malformed proof in client-final-message."))
        XCTAssertEqual(finalFailure("c=biws,r=abcSNONCE,p=not base64!"), Self.malformed("Malformed proof in client-final-message."))
        XCTAssertEqual(finalFailure("c=biws,r=abcSNONCE,p=\(proof),x=1"),
                       Self.malformed("Garbage found at the end of client-final-message."))
        let unexpectedBinding = SCRAMFailure(sqlState: "08P01",
                                             message: "unexpected SCRAM channel-binding attribute in client-final-message")
        XCTAssertEqual(finalFailure("c=eSws,r=abcSNONCE,p=\(proof)"), unexpectedBinding)
        XCTAssertEqual(finalFailure("c=biws,r=abcSNONCE,p=\(proof)", server: afterFirst(gs2: "y,,")), unexpectedBinding)
        XCTAssertEqual(finalFailure("c=Zm9v,r=abcSNONCE,p=\(proof)"), unexpectedBinding)
        let nonceMismatch = SCRAMFailure(sqlState: "08P01", message: "invalid SCRAM response", detail: "Nonce does not match.")
        XCTAssertEqual(finalFailure("c=biws,r=abcSNONCX,p=\(proof)"), nonceMismatch)
        XCTAssertEqual(finalFailure("c=biws,r=abc,p=\(proof)"), nonceMismatch)
    }

    func testChannelBindingDataMustMatchOurCertificate() {
        let plus = afterFirst(gs2: "p=tls-server-end-point,,", mechanism: "SCRAM-SHA-256-PLUS", tls: true)
        let checkFailed = SCRAMFailure(sqlState: "28000", message: "SCRAM channel binding check failed")
        XCTAssertEqual(finalFailure("c=biws,r=abcSNONCE,p=\(proof)", server: plus), checkFailed)
        let otherHash = Base64.encode(bytes("p=tls-server-end-point,,") + Crypto.sha256(bytes("other")))
        XCTAssertEqual(finalFailure("c=\(otherHash),r=abcSNONCE,p=\(proof)", server: plus), checkFailed)
        // The right binding data gets past the check to the proof, which is wrong here.
        let rightHash = Base64.encode(bytes("p=tls-server-end-point,,") + cbHash)
        XCTAssertEqual(finalFailure("c=\(rightHash),r=abcSNONCE,p=\(proof)", server: plus),
                       .passwordAuthenticationFailed(user: "alice"))
    }

    func testOutOfOrderMessages() {
        var fresh = server()
        XCTAssertEqual(failure(fresh.responseReceived(bytes("n,,n=,r=abc"))),
                       SCRAMFailure(sqlState: "XX000", message: "invalid SCRAM exchange state"))
        var started = afterFirst()
        XCTAssertEqual(failure(started.initialResponseReceived(mechanism: "SCRAM-SHA-256", data: bytes("n,,n=,r=abc"))),
                       SCRAMFailure(sqlState: "XX000", message: "invalid SCRAM exchange state"))
    }
}

/// The client's refusals of misbehaving servers (libpq's checks).
final class SCRAMClientProtocolTests: XCTestCase {
    func client(_ binding: SCRAMChannelBinding = .notSupported) -> SCRAMClient {
        var client = SCRAMClient(username: "alice", password: "pw", channelBinding: binding,
                                 clientNonce: "CNONCE", messageUsername: "")
        _ = client.clientFirstMessage()
        return client
    }

    func testServerFirstChecks() {
        var c = client()
        assertSCRAMError(.nonceMismatch) { () throws(SCRAMError) in try c.serverFirstReceived(bytes("r=XNONCEsrv,s=AQID,i=1")) }
        c = client()
        assertSCRAMError(.nonceMismatch) { () throws(SCRAMError) in try c.serverFirstReceived(bytes("r=CNONCE,s=AQID,i=1")) }
        c = client()
        assertSCRAMError(.nonceMismatch) { () throws(SCRAMError) in try c.serverFirstReceived(bytes("r=CNON,s=AQID,i=1")) }
        for iterations in ["0", "-1", "", "abc", "99999999999", "4096x"] {
            c = client()
            assertSCRAMError(.invalidIterationCount) { () throws(SCRAMError) in
                try c.serverFirstReceived(bytes("r=CNONCEsrv,s=AQID,i=\(iterations)"))
            }
        }
        c = client()
        assertSCRAMError(.invalidSalt) { () throws(SCRAMError) in try c.serverFirstReceived(bytes("r=CNONCEsrv,s=AQI,i=1")) }
        c = client()
        assertSCRAMError(.malformedMessage("garbage at end of server-first-message")) { () throws(SCRAMError) in
            try c.serverFirstReceived(bytes("r=CNONCEsrv,s=AQID,i=1,x=y"))
        }
        c = client()
        assertSCRAMError(.malformedMessage("attribute \"s\" expected")) { () throws(SCRAMError) in
            try c.serverFirstReceived(bytes("r=CNONCEsrv,i=1"))
        }
        c = client()
        assertSCRAMError(.serverError("other-error")) { () throws(SCRAMError) in try c.serverFirstReceived(bytes("e=other-error")) }
        // After a failure the client is finished.
        assertSCRAMError(.unexpectedMessage) { () throws(SCRAMError) in try c.serverFirstReceived(bytes("r=CNONCEsrv,s=AQID,i=1")) }
    }

    func testServerFinalBeforeServerFirstIsRefused() {
        var c = client()
        assertSCRAMError(.unexpectedMessage) { () throws(SCRAMError) in try c.serverFinalReceived(bytes("v=AAAA")) }
        XCTAssertFalse(c.isServerVerified)
    }

    /// A client that has answered a server holding `serverVerifier`.
    func clientAfterFinal(against serverVerifier: SCRAMVerifier) throws -> (SCRAMClient, SCRAMServerAction) {
        var c = SCRAMClient(username: "alice", password: "pw", channelBinding: .notSupported)
        var s = SCRAMServer(verifier: serverVerifier, mockSeed: [], username: "alice", channelBinding: nil)
        let first = continuePayload(s.initialResponseReceived(mechanism: c.mechanism, data: c.clientFirstMessage()))
        let final = s.responseReceived(try c.serverFirstReceived(first))
        return (c, final)
    }

    func testServerFinalChecks() throws {
        let verifier = SCRAMVerifier.make(password: "pw")
        var (c, action) = try clientAfterFinal(against: verifier)
        let signature = Array(finalPayload(action).dropFirst(2))
        var tampered = try XCTUnwrap(Base64.decode(bytes: signature))
        tampered[0] ^= 1
        let tamperedMessage = bytes("v=") + Base64.encodeToBytes(tampered)
        var copy = c
        assertSCRAMError(.incorrectServerSignature) { () throws(SCRAMError) in try copy.serverFinalReceived(tamperedMessage) }
        XCTAssertFalse(copy.isServerVerified)
        copy = c
        assertSCRAMError(.invalidServerSignature) { () throws(SCRAMError) in try copy.serverFinalReceived(bytes("v=AAAA")) }
        copy = c
        assertSCRAMError(.serverError("invalid-proof")) { () throws(SCRAMError) in try copy.serverFinalReceived(bytes("e=invalid-proof")) }
        copy = c
        assertSCRAMError(.malformedMessage("garbage at end of server-final-message")) { () throws(SCRAMError) in
            try copy.serverFinalReceived(bytes("v=") + signature + bytes(",x=1"))
        }
        copy = c
        assertSCRAMError(.malformedMessage("attribute \"v\" expected")) { () throws(SCRAMError) in
            try copy.serverFinalReceived(bytes("x=1"))
        }
        // The genuine signature is accepted, once.
        try c.serverFinalReceived(bytes("v=") + signature)
        XCTAssertTrue(c.isServerVerified)
        assertSCRAMError(.unexpectedMessage) { () throws(SCRAMError) in try c.serverFinalReceived(bytes("v=") + signature) }
    }

    /// A server holding only StoredKey (e.g. a leaked verifier with ServerKey unknown) can check
    /// the proof, but cannot produce the server signature; the client refuses it.
    func testImpostorServerWithoutServerKeyIsRefused() throws {
        let real = SCRAMVerifier.make(password: "pw")
        let impostor = try XCTUnwrap(SCRAMVerifier(iterations: real.iterations, salt: real.salt,
                                                   storedKey: real.storedKey, serverKey: Crypto.randomBytes(32)))
        var (c, action) = try clientAfterFinal(against: impostor)
        let final = finalPayload(action)
        assertSCRAMError(.incorrectServerSignature) { () throws(SCRAMError) in try c.serverFinalReceived(final) }
        XCTAssertFalse(c.isServerVerified)
    }

    func testMechanismToUse() throws {
        XCTAssertEqual(try SCRAMClient.mechanismToUse(offered: ["SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"], haveTLSServerEndPoint: true),
                       .scramSHA256Plus)
        XCTAssertEqual(try SCRAMClient.mechanismToUse(offered: ["SCRAM-SHA-256", "SCRAM-SHA-256-PLUS"], haveTLSServerEndPoint: true),
                       .scramSHA256Plus)
        XCTAssertEqual(try SCRAMClient.mechanismToUse(offered: ["SCRAM-SHA-256"], haveTLSServerEndPoint: true), .scramSHA256)
        XCTAssertEqual(try SCRAMClient.mechanismToUse(offered: ["FOO", "SCRAM-SHA-256"], haveTLSServerEndPoint: false), .scramSHA256)
        assertSCRAMError(.plusOfferedWithoutTLS) { () throws(SCRAMError) in
            try SCRAMClient.mechanismToUse(offered: ["SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"], haveTLSServerEndPoint: false)
        }
        assertSCRAMError(.noSupportedMechanism) { () throws(SCRAMError) in
            try SCRAMClient.mechanismToUse(offered: ["SCRAM-SHA-1", "OAUTHBEARER"], haveTLSServerEndPoint: true)
        }
        assertSCRAMError(.noSupportedMechanism) { () throws(SCRAMError) in
            try SCRAMClient.mechanismToUse(offered: [], haveTLSServerEndPoint: true)
        }
    }

    func testChannelBindingToUse() throws {
        let hash: [UInt8] = [1, 2, 3]
        XCTAssertEqual(try SCRAMClient.channelBindingToUse(offered: ["SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"], onTLS: true,
                                                           tlsServerEndPoint: hash), .tlsServerEndPoint(hash))
        XCTAssertEqual(try SCRAMClient.channelBindingToUse(offered: ["SCRAM-SHA-256"], onTLS: true, tlsServerEndPoint: hash),
                       .supportedButNotUsed)
        XCTAssertEqual(try SCRAMClient.channelBindingToUse(offered: ["SCRAM-SHA-256"], onTLS: false, tlsServerEndPoint: nil),
                       .notSupported)
        assertSCRAMError(.plusOfferedWithoutTLS) { () throws(SCRAMError) in
            try SCRAMClient.channelBindingToUse(offered: ["SCRAM-SHA-256-PLUS"], onTLS: false, tlsServerEndPoint: nil)
        }
    }

    func testErrorMessagesMatchLibpq() {
        XCTAssertEqual(SCRAMError.nonceMismatch.message, "invalid SCRAM response (nonce mismatch)")
        XCTAssertEqual(SCRAMError.invalidIterationCount.message, "malformed SCRAM message (invalid iteration count)")
        XCTAssertEqual(SCRAMError.serverError("invalid-proof").message,
                       "error received from server in SCRAM exchange: invalid-proof")
        XCTAssertEqual(SCRAMError.incorrectServerSignature.message, "incorrect server signature")
    }
}
