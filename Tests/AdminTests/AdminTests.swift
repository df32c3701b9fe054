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
}
