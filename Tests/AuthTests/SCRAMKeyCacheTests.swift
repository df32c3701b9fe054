import XCTest
@testable import Auth

/// The client's salted-password keys are derived once per (password, salt, iterations) and the
/// cached keys still produce the RFC 7677 exchange byte for byte.
final class SCRAMKeyCacheTests: XCTestCase {
    let serverFirst = Array("r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096".utf8)
    let clientFinal = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
    let serverFinal = Array("v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=".utf8)

    func client(_ password: String, cache: SCRAMKeyCache) -> SCRAMClient {
        SCRAMClient(username: "user", password: password, channelBinding: .notSupported,
                    clientNonce: "rOprNGfwEbeRWgbNEkqO", messageUsername: "user", keyCache: cache)
    }

    func testSecondLoginWithSameSaltReusesTheKeysAndStillMatchesRFC7677() throws {
        let cache = SCRAMKeyCache(capacity: 8)
        for round in 1...3 {
            var c = client("pencil", cache: cache)
            _ = c.clientFirstMessage()
            XCTAssertEqual(String(decoding: try c.serverFirstReceived(serverFirst), as: UTF8.self), clientFinal)
            try c.serverFinalReceived(serverFinal)
            XCTAssertTrue(c.isServerVerified)
            XCTAssertEqual(cache.derivationCount, 1, "round \(round)")
        }
    }

    func testAnotherPasswordSaltOrCountDerivesAgain() throws {
        let cache = SCRAMKeyCache(capacity: 8)
        var wrong = client("not-pencil", cache: cache)
        _ = wrong.clientFirstMessage()
        XCTAssertNotEqual(String(decoding: try wrong.serverFirstReceived(serverFirst), as: UTF8.self), clientFinal)
        let otherCount = Array("r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4097".utf8)
        var counted = client("pencil", cache: cache)
        _ = counted.clientFirstMessage()
        _ = try counted.serverFirstReceived(otherCount)
        var right = client("pencil", cache: cache)
        _ = right.clientFirstMessage()
        XCTAssertEqual(String(decoding: try right.serverFirstReceived(serverFirst), as: UTF8.self), clientFinal)
        try right.serverFinalReceived(serverFinal)
        XCTAssertEqual(cache.derivationCount, 3)
    }

    func testTableIsBounded() throws {
        let cache = SCRAMKeyCache(capacity: 2)
        for i in 0..<5 {
            var c = client("pw\(i)", cache: cache)
            _ = c.clientFirstMessage()
            _ = try c.serverFirstReceived(serverFirst)
        }
        // pw4 is still held; pw0 was dropped when the table filled.
        for name in ["pw4", "pw0"] {
            var c = client(name, cache: cache)
            _ = c.clientFirstMessage()
            _ = try c.serverFirstReceived(serverFirst)
        }
        XCTAssertEqual(cache.derivationCount, 6)
    }
}
