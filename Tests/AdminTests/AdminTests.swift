import XCTest
import Config
@testable import Admin

final class AdminTests: XCTestCase {
    func testIdentifiersAndConninfoValuesAreQuoted() {
        XCTAssertEqual(ReadOnlyRoleSQL.quoteIdentifier("we\"ird"), "\"we\"\"ird\"")
        XCTAssertEqual(Conninfo.quote("it's a \\ test"), "'it\\'s a \\\\ test'")
        let target = DatabaseTarget(name: "app", host: "db.example", port: 5433, dbname: "app db", sslMode: .verifyFull, sslRootCert: "/etc/ca.crt")
        let info = Conninfo.make(target: target, user: "ro", password: "p'w")
        XCTAssertTrue(info.contains("host='db.example'"))
        XCTAssertTrue(info.contains("dbname='app db'"))
        XCTAssertTrue(info.contains("sslmode='verify-full'"))
        XCTAssertTrue(info.contains("password='p\\'w'"))
    }

    func testReadOnlyRoleSQLGrantsReadingOnly() {
        let sql = ReadOnlyRoleSQL.make(role: "reader", database: "app", schemas: ["public", "sales"], owners: ["app_rw"])
        XCTAssertTrue(sql.contains("CREATE ROLE \"reader\" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS;"))
        XCTAssertTrue(sql.contains("REVOKE TEMPORARY, CREATE ON DATABASE \"app\" FROM PUBLIC;"))
        XCTAssertTrue(sql.contains("GRANT SELECT ON ALL TABLES IN SCHEMA \"sales\" TO \"reader\";"))
        XCTAssertTrue(sql.contains("ALTER DEFAULT PRIVILEGES FOR ROLE \"app_rw\" IN SCHEMA \"public\" GRANT SELECT ON TABLES TO \"reader\";"))
        for forbidden in ["INSERT", "UPDATE", "DELETE", "USAGE ON SEQUENCE", "EXECUTE", "GRANT \"", "SUPERUSER;"] {
            XCTAssertFalse(sql.contains("GRANT \(forbidden)"), forbidden)
        }
    }

    /// The start-up check and check-role plan the same way: a `password=auth_query` identity
    /// without a password for its role is checked through the auth user; one with
    /// `server_password` (or the entry's `password`) as the role itself.
    func testRoleChecksOfAuthQueryIdentitiesGoThroughTheAuthUser() throws {
        let config = try ConfigLoader.parse("""
        [portcullis]
        local_auth_method = trust
        auth_user = checker
        auth_password = check_pw
        [tls]
        client_tls = disable
        [databases]
        app = host=127.0.0.1 dbname=app sslmode=disable
        [identities]
        aq = mode=read-only password=auth_query
        aqpw = mode=read-only password=auth_query server_password=role_pw
        other = mode=read-only server_user=reader server_password=reader_pw
        """, fileName: "test.ini")
        let target = try XCTUnwrap(config.database(named: "app"))
        func plan(_ name: String) throws -> RoleCheck {
            RoleCheck.plan(identity: try XCTUnwrap(config.identities[name]), target: target, config: config)
        }
        let aq = try plan("aq")
        XCTAssertEqual(aq.role, "aq")
        guard case .throughAuthUser(let source) = aq.route else { return XCTFail("\(aq.route)") }
        XCTAssertEqual(source.user, "checker")
        XCTAssertEqual(aq.via, " (checked through auth_user \"checker\")")
        XCTAssertEqual(try plan("aqpw").route, .asRole(password: Secret("role_pw")))
        let other = try plan("other")
        XCTAssertEqual(other.role, "reader")
        XCTAssertEqual(other.route, .asRole(password: Secret("reader_pw")))
        XCTAssertEqual(other.via, "")
        // Every current_user of the check names the role instead, as a bound parameter.
        XCTAssertFalse(RoleAudit.queryForNamedRole.contains("current_user"))
        XCTAssertEqual(RoleAudit.queryForNamedRole.components(separatedBy: "$1::name").count,
                       RoleAudit.query.components(separatedBy: "current_user").count)
    }
}
