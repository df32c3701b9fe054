import XCTest
final class AuthTestsPlaceholder: XCTestCase { func testBuilds() { XCTAssertTrue(true) } }
