import XCTest
@testable import Auth

/// SCRAM pass-through (auth_query identities): the server side recovers the ClientKey only
/// from a proof that verified, and a client holding ClientKey and ServerKey logs in like one
/// holding the password.
final class SCRAMPassThroughTests: XCTestCase {
    private func exchange(_ server: inout SCRAMServer, _ client: inout SCRAMClient) throws -> SCRAMServerAction {
        guard case .sendContinue(let first) = server.initialResponseReceived(mechanism: client.mechanism, data: client.clientFirstMessage()) else {
            XCTFail("server-first"); return .fail(.passwordAuthenticationFailed(user: ""))
        }
        return server.responseReceived(try client.serverFirstReceived(first))
    }

    func testKeysAreRecoveredOnlyFromAVerifiedProof() throws {
        let verifier = SCRAMVerifier.make(password: "secret")
        var right = SCRAMServer(verifier: verifier, mockSeed: [1], username: "u", channelBinding: nil)
        var client = SCRAMClient(username: "u", password: "secret", channelBinding: .notSupported)
        guard case .sendFinal = try exchange(&right, &client) else { return XCTFail() }
        let keys = try XCTUnwrap(right.passThroughKeys)
        XCTAssertEqual(Crypto.sha256(keys.clientKey), verifier.storedKey)
        XCTAssertEqual(keys.serverKey, verifier.serverKey)

        var wrong = SCRAMServer(verifier: verifier, mockSeed: [1], username: "u", channelBinding: nil)
        var liar = SCRAMClient(username: "u", password: "guess", channelBinding: .notSupported)
        guard case .fail = try exchange(&wrong, &liar) else { return XCTFail() }
        XCTAssertNil(wrong.passThroughKeys)

        var mock = SCRAMServer(verifier: nil, mockSeed: [1], username: "ghost", channelBinding: nil)
        var anyone = SCRAMClient(username: "ghost", password: "secret", channelBinding: .notSupported)
        guard case .fail = try exchange(&mock, &anyone) else { return XCTFail() }
        XCTAssertNil(mock.passThroughKeys)

        var again = SCRAMServer(verifier: verifier, mockSeed: [2], username: "u", channelBinding: nil)
        var passThrough = SCRAMClient(username: "u", clientKey: keys.clientKey, serverKey: keys.serverKey, channelBinding: .notSupported)
        guard case .sendFinal(let final) = try exchange(&again, &passThrough) else { return XCTFail("keys log in") }
        XCTAssertNoThrow(try passThrough.serverFinalReceived(final))
    }
}
