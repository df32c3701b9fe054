import XCTest
import Wire

/// A buffer written out in partial writes is compacted only when that moves no more bytes
/// than were consumed (Leg.writeQueued), so a large message is not moved once per write.
final class ByteBufferCompactionTests: XCTestCase {
    func testCompactsOnlyOnceTheConsumedPartOutweighsTheRest() {
        var buffer = ByteBuffer()
        buffer.writeBytes([UInt8](repeating: 7, count: 1000))
        buffer.moveReaderIndex(forwardBy: 100)
        buffer.discardReadBytesIfWorthwhile()
        XCTAssertEqual(buffer.readerIndex, 100, "900 unread bytes are not moved for 100 consumed")
        buffer.moveReaderIndex(forwardBy: 400)
        buffer.discardReadBytesIfWorthwhile()
        XCTAssertEqual(buffer.readerIndex, 0)
        XCTAssertEqual(buffer.readableBytes, 500)
        XCTAssertEqual(Array(buffer.readableBytesView), [UInt8](repeating: 7, count: 500))
    }
}
