import XCTest
@testable import Config

/// `auth_user`/`auth_query`/`auth_function`/`auth_dbname` and `password=auth_query`.
final class AuthQuerySettingsTests: XCTestCase {
    private func load(_ lines: String, database: String = "", identity: String = "password=auth_query") throws -> PortcullisConfig {
        try ConfigLoader.parse("""
            [portcullis]
            \(lines)
            [databases]
            app = host=127.0.0.1 port=5432 dbname=appdb sslmode=disable \(database)
            [identities]
            dora = mode=read-write \(identity)
            [tls]
            client_tls = disable
            """, fileName: "authq.ini")
    }

    private func messages(_ lines: String, database: String = "", identity: String = "password=auth_query") -> [String] {
        do {
            _ = try load(lines, database: database, identity: identity)
            return []
        } catch let errors as ConfigErrors {
            return errors.errors.map(\.description)
        } catch {
            return ["\(error)"]
        }
    }

    func testDefaultsFollowPgBouncer() throws {
        let config = try load("auth_user = lookup")
        let settings = config.general.authQuery
        XCTAssertEqual(settings.effectiveQuery, "SELECT usename, passwd FROM pg_catalog.pg_shadow WHERE usename OPERATOR(pg_catalog.=) $1")
        XCTAssertEqual(settings.refreshInterval, .seconds(60))
        XCTAssertEqual(settings.timeout, .seconds(5))
        XCTAssertTrue(config.identities["dora"]?.passwordFromAuthQuery ?? false)
        XCTAssertNil(config.identities["dora"]?.password)
        let source = try XCTUnwrap(config.database(named: "app").flatMap { config.authQuerySource(for: $0) })
        XCTAssertEqual(source.user, "lookup")
        XCTAssertNil(source.password)
        XCTAssertEqual(source.dbname, "appdb")
    }

    func testEverySettingAndPerDatabaseOverrides() throws {
        let config = try load("""
            auth_user = lookup
            auth_password = enc:abc
            auth_function = pgbouncer.user_lookup
            auth_dbname = postgres
            auth_query_refresh_interval = 5s
            auth_query_timeout = 2s
            """)
        let settings = config.general.authQuery
        XCTAssertEqual(settings.effectiveQuery, "SELECT * FROM pgbouncer.user_lookup($1)")
        XCTAssertEqual(settings.refreshInterval, .seconds(5))
        XCTAssertEqual(settings.timeout, .seconds(2))
        XCTAssertTrue(settings.password?.isEncrypted ?? false)
        XCTAssertEqual("\(settings)".contains("enc:abc"), false, "the auth password never prints")
        let global = try XCTUnwrap(config.database(named: "app").flatMap { config.authQuerySource(for: $0) })
        XCTAssertEqual(global.user, "lookup")
        XCTAssertEqual(global.dbname, "postgres")

        let own = try load("auth_user = lookup", database: "auth_user=other auth_password=pw auth_dbname=authdb")
        let source = try XCTUnwrap(own.database(named: "app").flatMap { own.authQuerySource(for: $0) })
        XCTAssertEqual(source.user, "other")
        XCTAssertEqual(source.password?.reveal(), "pw")
        XCTAssertEqual(source.dbname, "authdb")
    }

    func testServiceUserIsTheFallback() throws {
        let config = try load("service_user = svc\nservice_password = svcpw")
        let source = try XCTUnwrap(config.database(named: "app").flatMap { config.authQuerySource(for: $0) })
        XCTAssertEqual(source.user, "svc")
        XCTAssertEqual(source.password?.reveal(), "svcpw")
        let query = try load("service_user = svc\nauth_query = SELECT rolname, rolpassword FROM pg_authid WHERE rolname = $1")
        XCTAssertEqual(query.general.authQuery.effectiveQuery, "SELECT rolname, rolpassword FROM pg_authid WHERE rolname = $1")
    }

    func testMistakesAreReportedWithTheirLine() {
        XCTAssertEqual(messages(""), ["authq.ini:6: identity \"dora\": password=auth_query needs auth_user (or service_user) in [portcullis] or in every [databases] entry"])
        XCTAssertEqual(messages("", database: "auth_user=lookup"), [], "an auth_user on every entry is enough")
        XCTAssertEqual(messages("auth_user = x\nauth_query = SELECT 1"), ["authq.ini:3: auth_query: must contain $1 (the user name)"])
        XCTAssertEqual(messages("auth_user = x\nauth_function = f(); DROP TABLE t"),
                       ["authq.ini:3: auth_function: must be schema.function (unquoted identifiers)"])
        XCTAssertEqual(messages("auth_user = x\nauth_function = a.b.c").count, 1)
        // Unqualified: the lookup's search_path is pg_catalog, pg_temp, so it must say where.
        XCTAssertEqual(messages("auth_user = x\nauth_function = user_lookup"),
                       ["authq.ini:3: auth_function: must be schema-qualified (schema.function): the lookup runs with search_path=pg_catalog,pg_temp"])
        XCTAssertEqual(messages("auth_user = x\nauth_query = SELECT a, b FROM t WHERE a=$1\nauth_function = s.f"),
                       ["authq.ini:4: auth_query and auth_function must not both be set"])
        XCTAssertEqual(messages("auth_user = x\nauth_query_timeout = 0"), ["authq.ini:3: auth_query_timeout: must be between 1s and 300s"])
        XCTAssertEqual(messages("auth_user = x\nauth_query_refresh_interval = 0"), ["authq.ini:3: auth_query_refresh_interval: must be greater than zero"])
        // Anything else in password= is still a verifier or an error.
        XCTAssertEqual(messages("auth_user = x", identity: "password=auth_querx").count, 1)
    }

    func testStoredVerifierForms() {
        XCTAssertNil(ClientPasswordVerifier.stored("plaintext"))
        XCTAssertEqual(ClientPasswordVerifier.stored("md5" + String(repeating: "a", count: 32)), .md5("md5" + String(repeating: "a", count: 32)))
    }
}
