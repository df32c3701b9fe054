import Foundation
import XCTest

@testable import Config

final class ValidFixtureTests: XCTestCase {
    static let checkedFixtures = ["valid-minimal.ini", "valid-full.ini", "valid-socket-only.ini", "valid-crlf.ini"]

    func load(_ name: String) throws -> PortcullisConfig {
        let url = try FixtureTests.fixtureDirectory().appendingPathComponent(name)
        return try ConfigLoader.parse(String(contentsOf: url, encoding: .utf8), fileName: name)
    }

    func testMinimalFixtureGetsSecureDefaults() throws {
        let config = try load("valid-minimal.ini")
        let general = config.general
        XCTAssertEqual(general.listenAddresses, ["127.0.0.1", "::1"])
        XCTAssertEqual(general.listenPort, 6432)
        XCTAssertEqual(general.unixSocketDirectories, [])
        XCTAssertEqual(general.unixSocketPermissions, 0o777)
        XCTAssertNil(general.unixSocketGroup)
        XCTAssertEqual(general.workers, 0)
        XCTAssertEqual(general.maxClientConnections, 1000)
        XCTAssertEqual(general.loginTimeout, .seconds(60))
        XCTAssertNil(general.clientIdleTimeout)
        XCTAssertEqual(general.shutdownDrainTimeout, .seconds(30))
        XCTAssertEqual(general.maxMessageSize, 64 * 1024 * 1024)
        XCTAssertEqual(general.outboundBufferLimit, 256 * 1024)
        XCTAssertEqual(general.localAuthMethod, .scramSHA256)
        XCTAssertEqual(general.hostAuthMethod, .scramSHA256)
        XCTAssertEqual(general.serverReset, .close)
        XCTAssertEqual(general.pool.maxSize, 20)
        XCTAssertEqual(general.pool.minIdle, 1)
        XCTAssertEqual(general.pool.spareLinger, .seconds(1))
        XCTAssertEqual(general.pool.idleTimeout, .seconds(600))
        XCTAssertEqual(general.pool.maxLifetime, .seconds(3600))
        XCTAssertEqual(general.pool.waitTimeout, .seconds(30))
        XCTAssertNil(general.secretKeyFile)
        XCTAssertEqual(general.logLevel, .info)

        let tls = config.tls
        XCTAssertEqual(tls.mode, .require)
        XCTAssertEqual(tls.certFile, "certs/server.crt")
        XCTAssertEqual(tls.keyFile, "certs/server.key")
        XCTAssertNil(tls.caFile)
        XCTAssertEqual(tls.minProtocol, .tls12)
        XCTAssertNil(tls.maxProtocol)
        XCTAssertEqual(tls.ciphers, "HIGH:MEDIUM:+3DES:!aNULL")
        XCTAssertNil(tls.ciphersuites)
        XCTAssertTrue(tls.directTLS)

        let app = try XCTUnwrap(config.databases["app"])
        XCTAssertEqual(app.name, "app")
        XCTAssertEqual(app.host, "db.internal")
        XCTAssertNil(app.hostaddr)
        XCTAssertEqual(app.port, 5432)
        XCTAssertNil(app.dbname)
        XCTAssertNil(app.user)
        XCTAssertNil(app.password)
        XCTAssertEqual(app.sslMode, .verifyFull)
        XCTAssertEqual(app.sslRootCert, "certs/ca.crt")
        XCTAssertNil(app.sslCert)
        XCTAssertNil(app.sslKey)
        XCTAssertTrue(app.sslSNI)
        XCTAssertNil(app.connectTimeout)
        XCTAssertNil(app.applicationName)
        XCTAssertEqual(config.identities.count, 0)
        XCTAssertEqual(config.sourcePath, "valid-minimal.ini")
    }

    func testFullFixtureSetsEveryKey() throws {
        let config = try load("valid-full.ini")
        let general = config.general
        XCTAssertEqual(general.listenAddresses, ["10.0.0.1", "127.0.0.1", "::1", "2001:db8::5"])
        XCTAssertEqual(general.listenPort, 7432)
        XCTAssertEqual(general.unixSocketDirectories, ["/run/portcullis", "/tmp"])
        XCTAssertEqual(general.unixSocketPermissions, 0o770)
        XCTAssertEqual(general.unixSocketGroup, "pgusers")
        XCTAssertEqual(general.workers, 4)
        XCTAssertEqual(general.maxClientConnections, 250)
        XCTAssertEqual(general.loginTimeout, .seconds(60))
        XCTAssertEqual(general.clientIdleTimeout, .seconds(15))
        XCTAssertEqual(general.shutdownDrainTimeout, .zero)
        XCTAssertEqual(general.maxMessageSize, 16 * 1024 * 1024)
        XCTAssertEqual(general.outboundBufferLimit, 8 * 1024)
        XCTAssertEqual(general.localAuthMethod, .trust)
        XCTAssertEqual(general.hostAuthMethod, .scramSHA256)
        XCTAssertEqual(general.serverReset, .discard)
        XCTAssertEqual(general.pool.maxSize, 5)
        XCTAssertEqual(general.pool.minIdle, 2)
        XCTAssertEqual(general.pool.spareLinger, .milliseconds(500))
        XCTAssertNil(general.pool.idleTimeout)
        XCTAssertEqual(general.pool.maxLifetime, .seconds(86400))
        XCTAssertEqual(general.pool.waitTimeout, .milliseconds(500))
        XCTAssertEqual(general.secretKeyFile, "keys/secret key;1")
        XCTAssertEqual(general.logLevel, .warning)

        let tls = config.tls
        XCTAssertEqual(tls.mode, .allow)
        XCTAssertEqual(tls.certFile, "/etc/portcullis/server.crt")
        XCTAssertEqual(tls.keyFile, "/etc/portcullis/server.key")
        XCTAssertEqual(tls.caFile, "/etc/portcullis/ca.crt")
        XCTAssertEqual(tls.minProtocol, .tls13)
        XCTAssertEqual(tls.maxProtocol, .tls13)
        XCTAssertEqual(tls.ciphers, "HIGH:!aNULL:!MD5")
        XCTAssertEqual(tls.ciphersuites, "TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256")
        XCTAssertFalse(tls.directTLS)

        XCTAssertEqual(Set(config.databases.keys), ["app", "reports", "local", "*"])
        let app = try XCTUnwrap(config.databases["app"])
        XCTAssertEqual(app.host, "127.0.0.1")
        XCTAssertEqual(app.port, 5433)
        XCTAssertEqual(app.dbname, "app_prod")
        XCTAssertEqual(app.sslMode, .verifyFull)
        XCTAssertEqual(app.sslRootCert, "certs/ca.crt")

        let reports = try XCTUnwrap(config.databases["reports"])
        XCTAssertEqual(reports.host, "db.example.com")
        XCTAssertEqual(reports.hostaddr, "192.0.2.7")
        XCTAssertEqual(reports.dbname, "my reports")
        XCTAssertEqual(reports.user, "reporter")
        XCTAssertEqual(reports.password?.reveal(), "pa ss'wo#rd;x")
        XCTAssertEqual(reports.sslMode, .verifyCA)
        XCTAssertEqual(reports.sslRootCert, "/etc/ssl/ca.pem")
        XCTAssertEqual(reports.sslCert, "c.pem")
        XCTAssertEqual(reports.sslKey, "k.pem")
        XCTAssertFalse(reports.sslSNI)
        XCTAssertEqual(reports.connectTimeout, .seconds(10))
        XCTAssertEqual(reports.applicationName, "portcullis")

        let local = try XCTUnwrap(config.databases["local"])
        XCTAssertTrue(local.isUnixSocket)
        XCTAssertEqual(local.sslMode, .disable, "a socket host defaults to sslmode=disable")

        let fallback = try XCTUnwrap(config.databases["*"])
        XCTAssertEqual(fallback.sslMode, .require)

        XCTAssertEqual(Set(config.identities.keys), ["alice", "Bob", "carol"], "identity names keep their case")
        let alice = try XCTUnwrap(config.identities["alice"])
        XCTAssertEqual(alice.mode, .readWrite)
        guard case .scramSHA256(let iterations, let salt, let storedKey, let serverKey) = alice.password else {
            return XCTFail("alice should have a SCRAM verifier, got \(String(describing: alice.password))")
        }
        XCTAssertEqual(iterations, 4096)
        XCTAssertEqual(salt, Array(0..<16))
        XCTAssertEqual(storedKey.count, 32)
        XCTAssertEqual(Array(storedKey.prefix(4)), [225, 15, 45, 229])
        XCTAssertEqual(serverKey.count, 32)
        XCTAssertEqual(Array(serverKey.prefix(4)), [39, 3, 213, 69])
        XCTAssertEqual(alice.serverUser, "app_owner")
        XCTAssertEqual(alice.serverPassword?.reveal(), "upstream secret")

        let bob = try XCTUnwrap(config.identities["Bob"])
        XCTAssertEqual(bob.mode, .readOnly)
        XCTAssertEqual(bob.password, .md5("md510b8caca84b2085b8e2f163898f1c1b7"))
        XCTAssertNil(bob.serverUser)
        XCTAssertEqual(bob.serverPassword?.reveal(), "enc:AAAA")
        XCTAssertEqual(bob.serverPassword?.isEncrypted, true)

        let carol = try XCTUnwrap(config.identities["carol"])
        XCTAssertNil(carol.password, "local_auth_method = trust lets an identity go without a password")
    }

    func testSocketOnlyFixture() throws {
        let config = try load("valid-socket-only.ini")
        XCTAssertEqual(config.general.listenAddresses, [])
        XCTAssertEqual(config.general.unixSocketDirectories, ["/tmp"])
        XCTAssertEqual(config.general.listenPort, 6433)
        XCTAssertEqual(config.general.hostAuthMethod, .reject)
        XCTAssertEqual(config.general.localAuthMethod, .trust)
        XCTAssertEqual(config.tls.mode, .disable)
        XCTAssertNil(config.tls.certFile)

        let resolved = try XCTUnwrap(config.database(named: "sales"))
        XCTAssertEqual(resolved.name, "sales")
        XCTAssertEqual(resolved.dbname, "sales", "the * entry connects to the database the client asked for")
        XCTAssertEqual(resolved.host, "/var/run/postgresql")
        XCTAssertEqual(resolved.user, "proxy")
        XCTAssertEqual(resolved.sslMode, .disable)
    }

    func testCRLFLineEndingsAndWildcardListen() throws {
        let config = try load("valid-crlf.ini")
        XCTAssertEqual(config.general.listenAddresses, ["0.0.0.0", "::"])
        XCTAssertEqual(config.tls.keyFile, "a.key")
        XCTAssertEqual(config.databases["app"]?.host, "::1")
        XCTAssertEqual(config.databases["app"]?.sslRootCert, "system")
    }

    func testDatabaseLookupPrefersExactNameThenFallback() throws {
        let config = try load("valid-full.ini")
        let app = try XCTUnwrap(config.database(named: "app"))
        XCTAssertEqual(app.dbname, "app_prod")
        XCTAssertEqual(app.port, 5433)
        let local = try XCTUnwrap(config.database(named: "local"))
        XCTAssertEqual(local.dbname, "local", "an exact entry without dbname uses the requested name")
        let other = try XCTUnwrap(config.database(named: "APP"))
        XCTAssertEqual(other.host, "fallback.example.com", "database names are case-sensitive")
        XCTAssertEqual(other.dbname, "APP")

        let minimal = try load("valid-minimal.ini")
        XCTAssertNil(minimal.database(named: "other"), "without a * entry unknown names are refused")
    }
}
