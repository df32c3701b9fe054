import XCTest
@testable import Auth

/// Client against server, and each against the RFC 7677 example exchange.
final class SCRAMExchangeTests: XCTestCase {
    let rfcClientFirst = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO"
    let rfcServerFirst = "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
    let rfcClientFinal = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
    let rfcServerFinal = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
    let seed = bytes("cluster mock seed")

    func rfcClient() -> SCRAMClient {
        SCRAMClient(username: "user", password: "pencil", channelBinding: .notSupported,
                    clientNonce: "rOprNGfwEbeRWgbNEkqO", messageUsername: "user")
    }

    func rfcServer() throws -> SCRAMServer {
        let salt = try XCTUnwrap(Base64.decode("W22ZaJ0SNY7soEsUEjb6gQ=="))
        return SCRAMServer(verifier: .make(password: "pencil", salt: salt, iterations: 4096), mockSeed: seed,
                           username: "user", channelBinding: nil, serverNonce: "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0")
    }

    func testClientProducesRFC7677Exchange() throws {
        var client = rfcClient()
        XCTAssertEqual(client.mechanism, "SCRAM-SHA-256")
        XCTAssertEqual(string(client.clientFirstMessage()), rfcClientFirst)
        XCTAssertEqual(string(try client.serverFirstReceived(bytes(rfcServerFirst))), rfcClientFinal)
        XCTAssertFalse(client.isServerVerified)
        try client.serverFinalReceived(bytes(rfcServerFinal))
        XCTAssertTrue(client.isServerVerified)
    }

    func testServerProducesRFC7677Exchange() throws {
        var server = try rfcServer()
        XCTAssertEqual(server.mechanisms, ["SCRAM-SHA-256"])
        XCTAssertEqual(server.initialResponseReceived(mechanism: "SCRAM-SHA-256", data: bytes(rfcClientFirst)),
                       .sendContinue(bytes(rfcServerFirst)))
        XCTAssertFalse(server.isAuthenticated)
        XCTAssertEqual(server.responseReceived(bytes(rfcClientFinal)), .sendFinal(bytes(rfcServerFinal)))
        XCTAssertTrue(server.isAuthenticated)
    }

    func testClientSendsEmptyUsernameAndEighteenByteNonceLikeLibpq() throws {
        var client = SCRAMClient(username: "alice", password: "pw", channelBinding: .notSupported)
        let first = string(client.clientFirstMessage())
        XCTAssertTrue(first.hasPrefix("n,,n=,r="), first)
        let nonce = first.dropFirst("n,,n=,r=".count)
        XCTAssertEqual(nonce.count, 24)
        XCTAssertEqual(try XCTUnwrap(Base64.decode(String(nonce))).count, 18)
        var other = SCRAMClient(username: "alice", password: "pw", channelBinding: .notSupported)
        XCTAssertNotEqual(string(other.clientFirstMessage()), first)
    }

    func testSASLNameEscaping() {
        XCTAssertEqual(string(SCRAMClient.saslName("a,b=c")), "a=2Cb=3Dc")
    }

    /// Runs a full exchange; returns the server's final action and the client after it.
    func exchange(client: inout SCRAMClient, server: inout SCRAMServer,
                  file: StaticString = #filePath, line: UInt = #line) throws -> SCRAMServerAction {
        let serverFirst = continuePayload(server.initialResponseReceived(mechanism: client.mechanism,
                                                                          data: client.clientFirstMessage()),
                                          file: file, line: line)
        let clientFinal = try client.serverFirstReceived(serverFirst)
        return server.responseReceived(clientFinal)
    }

    func testRoundTripWithoutTLS() throws {
        var client = SCRAMClient(username: "alice", password: "correct horse", channelBinding: .notSupported)
        var server = SCRAMServer(verifier: .make(password: "correct horse"), mockSeed: seed, username: "alice",
                                 channelBinding: nil)
        let final = finalPayload(try exchange(client: &client, server: &server))
        XCTAssertTrue(server.isAuthenticated)
        try client.serverFinalReceived(final)
        XCTAssertTrue(client.isServerVerified)
    }

    func testRoundTripWithTLSButNoChannelBinding() throws {
        var client = SCRAMClient(username: "alice", password: "pw", channelBinding: .supportedButNotUsed)
        XCTAssertTrue(string(client.clientFirstMessage()).hasPrefix("y,,n=,r="))
        client = SCRAMClient(username: "alice", password: "pw", channelBinding: .supportedButNotUsed)
        var server = SCRAMServer(verifier: .make(password: "pw"), mockSeed: seed, username: "alice", channelBinding: nil)
        let final = finalPayload(try exchange(client: &client, server: &server))
        try client.serverFinalReceived(final)
        XCTAssertTrue(client.isServerVerified)
    }

    func testRoundTripWithChannelBinding() throws {
        let certificateHash = Crypto.sha256(bytes("our certificate DER"))
        var client = SCRAMClient(username: "alice", password: "pw", channelBinding: .tlsServerEndPoint(certificateHash))
        XCTAssertEqual(client.mechanism, "SCRAM-SHA-256-PLUS")
        var server = SCRAMServer(verifier: .make(password: "pw"), mockSeed: seed, username: "alice",
                                 channelBinding: certificateHash)
        XCTAssertEqual(server.mechanisms, ["SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"])
        let first = client.clientFirstMessage()
        XCTAssertTrue(string(first).hasPrefix("p=tls-server-end-point,,n=,r="))
        let serverFirst = continuePayload(server.initialResponseReceived(mechanism: client.mechanism, data: first))
        let clientFinal = try client.serverFirstReceived(serverFirst)
        XCTAssertTrue(string(clientFinal).hasPrefix("c=" + Base64.encode(bytes("p=tls-server-end-point,,") + certificateHash) + ",r="))
        try client.serverFinalReceived(finalPayload(server.responseReceived(clientFinal)))
        XCTAssertTrue(client.isServerVerified)
    }

    func testClientOnTLSMayStillChoosePlainMechanismWhenServerOffersPlus() throws {
        // Client chose SCRAM-SHA-256 with "n" (e.g. channel_binding=disable): allowed.
        var client = SCRAMClient(username: "alice", password: "pw", channelBinding: .notSupported)
        var server = SCRAMServer(verifier: .make(password: "pw"), mockSeed: seed, username: "alice",
                                 channelBinding: [1, 2, 3])
        _ = finalPayload(try exchange(client: &client, server: &server))
    }

    func testTamperedChannelBindingFails() throws {
        var client = SCRAMClient(username: "alice", password: "pw",
                                 channelBinding: .tlsServerEndPoint(Crypto.sha256(bytes("attacker certificate"))))
        var server = SCRAMServer(verifier: .make(password: "pw"), mockSeed: seed, username: "alice",
                                 channelBinding: Crypto.sha256(bytes("our certificate")))
        let action = try exchange(client: &client, server: &server)
        XCTAssertEqual(failure(action), SCRAMFailure(sqlState: "28000", message: "SCRAM channel binding check failed"))
        XCTAssertFalse(server.isAuthenticated)
    }

    func testWrongPasswordFailsWith28P01() throws {
        var client = SCRAMClient(username: "alice", password: "wrong", channelBinding: .notSupported)
        var server = SCRAMServer(verifier: .make(password: "right"), mockSeed: seed, username: "alice",
                                 channelBinding: nil)
        let action = try exchange(client: &client, server: &server)
        XCTAssertEqual(action, .fail(SCRAMFailure(sqlState: "28P01",
                                                  message: "password authentication failed for user \"alice\"")))
        XCTAssertFalse(server.isAuthenticated)
        // The exchange is over: anything further is refused.
        XCTAssertEqual(failure(server.responseReceived(bytes("c=biws"))),
                       SCRAMFailure(sqlState: "XX000", message: "invalid SCRAM exchange state"))
    }

    func testUnknownUserRunsIndistinguishableMockExchange() throws {
        func serverFirst(username: String, seed: [UInt8], verifier: SCRAMVerifier?) throws -> String {
            var client = SCRAMClient(username: username, password: "guess", channelBinding: .notSupported)
            var server = SCRAMServer(verifier: verifier, mockSeed: seed, username: username, channelBinding: nil)
            XCTAssertEqual(server.credentials.doomed, verifier == nil)
            let first = client.clientFirstMessage()
            let reply = string(continuePayload(server.initialResponseReceived(mechanism: "SCRAM-SHA-256", data: first)))
            let clientNonce = string(Array(first.dropFirst("n,,n=,r=".count)))
            XCTAssertTrue(reply.hasPrefix("r=" + clientNonce), reply)
            // The guess fails exactly like a wrong password for an existing role.
            let final = server.responseReceived(try client.serverFirstReceived(bytes(reply)))
            XCTAssertEqual(final, .fail(.passwordAuthenticationFailed(user: username)))
            return reply
        }
        func fields(_ serverFirst: String) -> (nonceSuffixLength: Int, salt: String, iterations: String) {
            let parts = serverFirst.split(separator: ",").map(String.init)
            return (parts[0].count - 2 - 24, parts[1], parts[2])
        }

        let mock1 = fields(try serverFirst(username: "ghost", seed: seed, verifier: nil))
        let mock2 = fields(try serverFirst(username: "ghost", seed: seed, verifier: nil))
        let real = fields(try serverFirst(username: "alice", seed: seed, verifier: .make(password: "pw")))
        // Same salt for the same unknown user every time, like a stored secret.
        XCTAssertEqual(mock1.salt, mock2.salt)
        // Same shape as a real role's default secret: 24-char server nonce, 16-byte salt, i=4096.
        XCTAssertEqual(mock1.nonceSuffixLength, 24)
        XCTAssertEqual(real.nonceSuffixLength, 24)
        XCTAssertEqual(try XCTUnwrap(Base64.decode(String(mock1.salt.dropFirst(2)))).count, 16)
        XCTAssertEqual(mock1.salt.count, real.salt.count)
        XCTAssertEqual(mock1.iterations, "i=4096")
        XCTAssertEqual(real.iterations, "i=4096")
        // The salt depends on the user name and the installation's secret seed.
        XCTAssertNotEqual(fields(try serverFirst(username: "ghost2", seed: seed, verifier: nil)).salt, mock1.salt)
        XCTAssertNotEqual(fields(try serverFirst(username: "ghost", seed: bytes("other seed"), verifier: nil)).salt, mock1.salt)
        XCTAssertEqual(mock1.salt, "s=" + Base64.encode(Array(Crypto.sha256(bytes("ghost") + seed).prefix(16))))
    }

    func testNoInitialResponseGetsEmptyChallenge() throws {
        var client = SCRAMClient(username: "alice", password: "pw", channelBinding: .notSupported)
        var server = SCRAMServer(verifier: .make(password: "pw"), mockSeed: seed, username: "alice", channelBinding: nil)
        XCTAssertEqual(server.initialResponseReceived(mechanism: "SCRAM-SHA-256", data: nil), .sendContinue([]))
        let serverFirst = continuePayload(server.responseReceived(client.clientFirstMessage()))
        let final = finalPayload(server.responseReceived(try client.serverFirstReceived(serverFirst)))
        try client.serverFinalReceived(final)
        XCTAssertTrue(client.isServerVerified)
    }
}
