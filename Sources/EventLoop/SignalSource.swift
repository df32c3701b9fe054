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
        return try syscallValue { handled.withUnsafeBufferPointer { pc_signalfd_for($0.baseAddress, Int32($0.count)) } }
    }

    /// Reads all pending signals.
    public static func readPending(_ fd: Int32) -> [Int32] {
        var signals: [Int32] = []
        var info = signalfd_siginfo()
        let size = MemoryLayout<signalfd_siginfo>.size
        while case .processed(let count)? = try? syscall({ read(fd, &info, size) }), count == size {
            signals.append(Int32(bitPattern: info.ssi_signo))
        }
        return signals
    }
}
