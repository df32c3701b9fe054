import XCTest
import Logging
import Glibc
import EventLoop
@testable import Proxy

/// The pid file is removed at exit only while it is still this process's: an instance shutting
/// down must not remove the one a newer instance (a quick restart) has written.
final class ReloadReporterTests: XCTestCase {
    func testFinishLeavesANewerInstancesPidFile() throws {
        var template = Array("/tmp/portcullis-pidfile-XXXXXX".utf8CString)
        let made: UnsafeMutablePointer<CChar>? = mkdtemp(&template)
        let dir = String(cString: try XCTUnwrap(made))
        defer { rmdir(dir) }
        let path = dir + "/portcullis.pid"
        let reporter = ReloadReporter(pidFile: path, logger: Logger(label: "test"))
        try reporter.start()
        XCTAssertTrue(ReloadReporter.holdsOwnPID(Descriptor.readFile(path, limit: 64)))
        // A newer instance writes its pid.
        let newer = "\(getpid() + 1)\n"
        XCTAssertNil(AtomicFile.write(newer, to: path))
        reporter.finish()
        XCTAssertEqual(Descriptor.readFile(path, limit: 64).map { String(decoding: $0, as: UTF8.self) }, newer, "the newer pid file stays")
        // Its own is removed.
        XCTAssertNil(AtomicFile.write("\(getpid())\n", to: path))
        reporter.finish()
        XCTAssertNil(Descriptor.readFile(path, limit: 64))
        unlink(ReloadStatus.path(pidFile: path))
    }
}
