import XCTest
@testable import Config

final class PoolModeSettingsTests: XCTestCase {
    private func load(_ lines: String, entry: String = "") throws -> PortcullisConfig {
        try ConfigLoader.parse("""
            [portcullis]
            \(lines)
            [databases]
            app = host=127.0.0.1 port=5432 dbname=app sslmode=disable \(entry)
            [identities]
            agent = mode=read-only password='md5aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa'
            [tls]
            client_tls = disable
            """, fileName: "pool.ini")
    }

    func testSessionModeIsTheDefault() throws {
        let config = try load("")
        XCTAssertEqual(config.general.poolMode, .session)
        XCTAssertEqual(config.general.transactionPin, .pin)
        XCTAssertEqual(config.general.maxPreparedStatements, 200)
        XCTAssertNil(config.database(named: "app")?.poolMode)
    }

    func testGlobalAndPerEntrySettings() throws {
        let config = try load("pool_mode = transaction\ntransaction_pin = refuse\nmax_prepared_statements = 0",
                              entry: "pool_mode=session transaction_pin=pin")
        XCTAssertEqual(config.general.poolMode, .transaction)
        XCTAssertEqual(config.general.transactionPin, .refuse)
        XCTAssertEqual(config.general.maxPreparedStatements, 0)
        XCTAssertEqual(config.database(named: "app")?.poolMode, .session)
        XCTAssertEqual(config.database(named: "app")?.transactionPin, .pin)
    }

    func testBadValuesAreRefusedWithTheirLine() {
        XCTAssertThrowsError(try load("pool_mode = statement")) { error in
            XCTAssertTrue("\(error)".contains("pool_mode"), "\(error)")
        }
        XCTAssertThrowsError(try load("", entry: "transaction_pin=maybe")) { error in
            XCTAssertTrue("\(error)".contains("transaction_pin"), "\(error)")
        }
    }
}
