import XCTest
@testable import Config

/// `catalog_max_age`: how old a catalog snapshot may grow before its database's read-only
/// statements are refused (docs/CONFIG.md).
final class CatalogMaxAgeSettingsTests: XCTestCase {
    private func load(_ lines: String) throws -> PortcullisConfig {
        try ConfigLoader.parse("""
            [portcullis]
            \(lines)
            [databases]
            app = host=127.0.0.1 port=5432 dbname=app sslmode=disable
            [tls]
            client_tls = disable
            """, fileName: "catalog.ini")
    }

    func testTheDefaultIsThreeRefreshIntervalsButAtLeastAMinute() throws {
        XCTAssertEqual(try load("").general.effectiveCatalogMaxAge, .seconds(90))
        XCTAssertEqual(try load("catalog_refresh_interval = 5s").general.effectiveCatalogMaxAge, .seconds(60))
        XCTAssertEqual(try load("catalog_refresh_interval = 1h").general.effectiveCatalogMaxAge, .seconds(3 * 3600))
        XCTAssertEqual(try load("catalog_max_age = ''").general.effectiveCatalogMaxAge, .seconds(90))
    }

    func testAnExplicitValueWins() throws {
        let config = try load("catalog_refresh_interval = 1s\ncatalog_max_age = 3s")
        XCTAssertEqual(config.general.effectiveCatalogMaxAge, .seconds(3))
    }

    func testThereIsNoOffAndNoBoundShorterThanTheInterval() {
        for lines in ["catalog_max_age = 0", "catalog_max_age = soon", "catalog_max_age = 30s",
                      "catalog_refresh_interval = 1min\ncatalog_max_age = 59s"] {
            XCTAssertThrowsError(try load(lines), lines) { error in
                XCTAssertTrue("\(error)".contains("catalog_max_age"), "\(lines): \(error)")
            }
        }
    }
}
