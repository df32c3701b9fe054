import XCTest
@testable import Session

final class MessageTypeTableTests: XCTestCase {
    /// Every one of the 256 type bytes answers as the set it was built from, in all four words.
    func testMatchesTheSetForEveryByte() {
        let sets: [Set<UInt8>] = [[], Set("QFXBCDEHPSdcf".utf8), [0, 63, 64, 127, 128, 191, 192, 255], Set(0...255)]
        for set in sets {
            let table = MessageTypeTable { set.contains($0) }
            for type in UInt8.min...UInt8.max {
                XCTAssertEqual(table[type], set.contains(type), "type \(type) in \(set.sorted())")
            }
        }
    }
}
