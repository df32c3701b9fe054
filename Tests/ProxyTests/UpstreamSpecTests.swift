import XCTest
import Config
@testable import Proxy

/// A pool serves one set of server credentials: connections (spares, reset sessions) opened
/// with one identity's certificate or password never serve an identity without them.
final class UpstreamSpecTests: XCTestCase {
    func spec(_ target: DatabaseTarget, _ password: Secret?) -> UpstreamSpec {
        UpstreamSpec(databaseEntry: "app", dbname: "app", serverUser: "agent", parameters: [], route: target.route, readOnly: true,
                     credentials: UpstreamSpec.credentialDigest(target: target, password: password))
    }

    func testCredentialsArePartOfThePoolKey() {
        let plain = DatabaseTarget(name: "app", host: "127.0.0.1")
        var withCertificate = plain
        withCertificate.sslCert = "/certs/agent.crt"
        withCertificate.sslKey = "/certs/agent.key"
        withCertificate.certificateIdentity = "agent_cert"
        XCTAssertNotEqual(spec(withCertificate, Secret("pw")), spec(plain, Secret("pw")))
        XCTAssertNotEqual(spec(plain, Secret("pw")), spec(plain, Secret("other")))
        XCTAssertNotEqual(spec(plain, Secret("pw")), spec(plain, nil))
        XCTAssertNotEqual(spec(plain, Secret("")), spec(plain, nil))
        XCTAssertEqual(spec(plain, Secret("pw")), spec(plain, Secret("pw")), "identities with the same credentials share a pool")
        XCTAssertEqual(Set([spec(plain, Secret("pw")), spec(plain, Secret("pw"))]).count, 1)
        XCTAssertEqual(spec(withCertificate, nil), spec(withCertificate, nil))
    }
}
