import XCTest
@testable import Session

final class CatalogChangeTagTests: XCTestCase {
    func testDDLAndPrivilegeTagsChangeTheCatalog() {
        for tag in ["CREATE VIEW", "CREATE FUNCTION", "ALTER TABLE", "DROP VIEW", "COMMENT", "GRANT", "REVOKE",
                    "SECURITY LABEL", "IMPORT FOREIGN SCHEMA", "CREATE POLICY"] {
            XCTAssertTrue(CatalogChangeTag.changesCatalog(Array((tag + "\0").utf8)), tag)
        }
        for tag in ["SELECT 1", "INSERT 0 1", "UPDATE 3", "BEGIN", "COMMIT", "SET", "COPY 5", "FETCH 1", "EXPLAIN"] {
            XCTAssertFalse(CatalogChangeTag.changesCatalog(Array((tag + "\0").utf8)), tag)
        }
    }
}
