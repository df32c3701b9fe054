import XCTest

@testable import Config

final class SecretTests: XCTestCase {
    static let secrets = ["db-pass-XYZZY", "ident-upstream-PLUGH"]

    func loadConfigWithSecrets() throws -> PortcullisConfig {
        try ConfigLoader.parse(
            """
            [tls]
            client_tls = disable
            [databases]
            app = host=db sslmode=require password=\(Self.secrets[0])
            [identities]
            alice = password=md510b8caca84b2085b8e2f163898f1c1b7 server_password='\(Self.secrets[1])'
            """, fileName: "secrets.ini")
    }

    func testSecretsAreMaskedInEveryDescription() throws {
        let config = try loadConfigWithSecrets()
        let app = try XCTUnwrap(config.databases["app"])
        let alice = try XCTUnwrap(config.identities["alice"])
        XCTAssertEqual(app.password?.reveal(), Self.secrets[0])
        XCTAssertEqual(alice.serverPassword?.reveal(), Self.secrets[1])

        var dumped = ""
        dump(config, to: &dumped)
        let renderings = [
            String(describing: config), String(reflecting: config), dumped,
            String(describing: app), String(reflecting: app), "\(app)",
            String(describing: alice), String(reflecting: alice),
            String(describing: config.databases), String(describing: config.identities),
            String(describing: app.password), String(reflecting: app.password as Any),
        ]
        for rendering in renderings {
            for secret in Self.secrets {
                XCTAssertFalse(rendering.contains(secret), "secret leaked in: \(rendering)")
            }
        }
        XCTAssertTrue(String(describing: app).contains("********"))
        XCTAssertEqual(Secret("x").description, "********")
        XCTAssertEqual(Secret("x").debugDescription, "********")
        XCTAssertTrue(Mirror(reflecting: Secret("x")).children.isEmpty)
    }

    func testErrorsAboutSecretsDoNotQuoteThem() {
        let text = """
            [tls]
            client_tls = disable
            [databases]
            app = host=db sslmode=prefer password=leak-me-1
            [identities]
            alice = password=leak-me-2 server_password=leak-me-3 bogus=1
            """
        XCTAssertThrowsError(try ConfigLoader.parse(text, fileName: "x.ini")) { error in
            let description = String(describing: error)
            XCTAssertTrue(description.contains("plaintext passwords are refused"), description)
            XCTAssertFalse(description.contains("leak-me"), description)
        }
    }
}

/// A configuration that others can read must not hold plaintext secrets.
final class ConfigExposureTests: XCTestCase {
    func testWorldReadableFileWithPlaintextSecretsIsRefused() throws {
        let config = try ConfigLoader.parse("""
            [tls]
            client_tls = disable
            [databases]
            app = host=127.0.0.1 sslmode=disable password=plain_db_pw
            enc = host=127.0.0.1 sslmode=disable password=enc:v1:AAAA
            [identities]
            ro = mode=read-only server_password=plain_id_pw password='md5\(String(repeating: "0", count: 32))'
            """, fileName: "t.ini")
        let secrets = ConfigLoader.plaintextSecrets(in: config)
        XCTAssertEqual(secrets, ["password of database \"app\"", "server_password of identity \"ro\""])
        let error = try XCTUnwrap(ConfigLoader.exposureError(path: "t.ini", mode: 0o100644, secrets: secrets))
        XCTAssertTrue(error.description.contains("readable by others (mode 0644)"), error.description)
        XCTAssertFalse(error.description.contains("plain_db_pw") || error.description.contains("plain_id_pw"), "never the values")
        XCTAssertNil(ConfigLoader.exposureError(path: "t.ini", mode: 0o100640, secrets: secrets), "group access is allowed")
        XCTAssertNil(ConfigLoader.exposureError(path: "t.ini", mode: 0o100644, secrets: []), "enc: values only: fine")
    }
}
