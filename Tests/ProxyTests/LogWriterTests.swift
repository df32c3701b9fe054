import XCTest
import Glibc
import Synchronization
@testable import Proxy

/// The process log is written by its own thread: a standard error nobody reads (a full pipe)
/// does not block the threads that log, the queue is bounded, and what was dropped is said.
final class LogWriterTests: XCTestCase {
    func testAFullPipeNeverBlocksTheLoggerAndDropsAreReported() throws {
        var fds: [Int32] = [0, 0]
        XCTAssertEqual(pipe(&fds), 0)
        defer { close(fds[0]) }
        let writer = LogWriter(descriptor: fds[1], maxQueuedBytes: 64 * 1024)
        // 10,000 lines of 100 bytes: 1 MB, far more than the pipe (64 KiB) and the queue hold.
        // Were the lines written on this thread, the first full pipe would block it for good.
        let line = String(repeating: "x", count: 99) + "\n"
        let done = expectation(description: "every write returned")
        let thread = Thread {
            for _ in 0..<10_000 { writer.write(line) }
            done.fulfill()
        }
        thread.start()
        wait(for: [done], timeout: 20)
        // Now drain the pipe: whole lines, then the notice of the drop.
        let received = Mutex<[UInt8]>([])
        let readEnd = fds[0]
        let reader = Thread {
            var chunk = [UInt8](repeating: 0, count: 65536)
            while true {
                let n = read(readEnd, &chunk, chunk.count)
                if n <= 0 { break }
                received.withLock { $0 += chunk[0..<n] }
            }
        }
        reader.start()
        writer.flush(limit: .seconds(10))
        close(fds[1])
        let deadline = Date().addingTimeInterval(10)
        while !reader.isFinished && Date() < deadline { usleep(10_000) }
        let text = received.withLock { String(decoding: $0, as: UTF8.self) }
        let lines = text.split(separator: "\n")
        XCTAssertTrue(lines.allSatisfy { $0.count == 99 || $0.hasPrefix("portcullis: ") }, "lines cut")
        XCTAssertLessThan(lines.filter { $0.count == 99 }.count, 10_000, "the bound dropped some")
        XCTAssertTrue(text.contains("log line(s) dropped: standard error did not keep up"), String(text.suffix(200)))
    }
}
