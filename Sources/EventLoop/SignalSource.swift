import Glibc
import CPortcullisShims

/// Signals delivered as readable events through a signalfd. The signals must be blocked in every
/// thread, so call `blockProcessSignals` on the main thread before any other thread starts.
public enum SignalSource {
    public static let handled: [Int32] = [SIGTERM, SIGINT, SIGHUP]

    /// Blocks the handled signals in the calling thread (inherited by threads it starts), ignores
    /// SIGPIPE (sockets use MSG_NOSIGNAL, but OpenSSL's writes do not), and returns the signalfd.
    public static func blockProcessSignals() throws(Errno) -> Int32 {
        signal(SIGPIPE, SIG_IGN)
        let fd = handled.withUnsafeBufferPointer { pc_signalfd_for($0.baseAddress, Int32($0.count)) }
        if fd < 0 { throw Errno.current }
        return fd
    }

    /// Reads all pending signals.
    public static func readPending(_ fd: Int32) -> [Int32] {
        var signals: [Int32] = []
        while true {
            let signo = pc_signalfd_read(fd)
            if signo <= 0 { break }
            signals.append(signo)
        }
        return signals
    }
}
