import Foundation
import Glibc
import XCTest

/// A NOTIFY_SOCKET of our own (a Unix datagram socket in `dir`), standing in for systemd's:
/// what the proxy sends with sd_notify arrives here, one datagram per `receive()`.
final class NotifySocket {
    let path: String
    private let fd: Int32

    init(dir: String) throws {
        path = "\(dir)/notify.sock"
        fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        guard fd >= 0 else { throw CommandError(description: "socket: errno \(errno)") }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in raw.copyBytes(from: Array(path.utf8) + [0]) }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard bound == 0 else {
            close(fd)
            throw CommandError(description: "bind \(path): errno \(errno)")
        }
        // A receive that waits longer than this fails the test's comparison with "".
        var timeout = timeval(tv_sec: 20, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }

    deinit { close(fd) }

    /// The next datagram, or "" after 20 s without one.
    func receive() -> String {
        var buffer = [UInt8](repeating: 0, count: 512)
        let n = recv(fd, &buffer, buffer.count, 0)
        return n > 0 ? String(decoding: buffer.prefix(n), as: UTF8.self) : ""
    }
}
