import XCTest
final class ConfigTestsPlaceholder: XCTestCase { func testBuilds() { XCTAssertTrue(true) } }
