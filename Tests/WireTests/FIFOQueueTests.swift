import XCTest
@testable import Wire

/// ``FIFOQueue``: the order an `Array` would keep, through every edit, across the compactions
/// of its consumed prefix.
final class FIFOQueueTests: XCTestCase {
    func testPopsInOrderAcrossCompactions() {
        var queue = FIFOQueue<Int>()
        var model: [Int] = []
        var next = 0
        // Uneven appends and pops: the head passes 32 and half the storage many times.
        for round in 0..<500 {
            for _ in 0..<(round % 7) { queue.append(next); model.append(next); next += 1 }
            for _ in 0..<(round % 5) {
                XCTAssertEqual(queue.popFirst(), model.isEmpty ? nil : model.removeFirst())
            }
            XCTAssertEqual(Array(queue.elements), model)
            XCTAssertEqual(queue.count, model.count)
            XCTAssertEqual(queue.first, model.first)
        }
    }

    func testRemoveFirstCountUpdateEachAndReplaceAll() {
        var queue = FIFOQueue<Int>()
        for value in 0..<100 { queue.append(value) }
        queue.removeFirst(40)
        XCTAssertEqual(queue.first, 40)
        queue.updateEach { $0 *= 2 }
        XCTAssertEqual(Array(queue.elements), (40..<100).map { $0 * 2 })
        queue.updateFirst { $0 = -1 }
        XCTAssertEqual(queue.first, -1)
        queue.replaceAll(with: [7, 8])
        XCTAssertEqual(Array(queue.elements), [7, 8])
        queue.removeFirst(5)
        XCTAssertTrue(queue.isEmpty)
        XCTAssertNil(queue.popFirst())
        queue.append(9)
        XCTAssertEqual(Array(queue.elements), [9])
    }
}
