import CPortcullisShims
import Glibc

/// systemd's readiness protocol (sd_notify(3)): a no-op unless started by systemd with
/// Type=notify (NOTIFY_SOCKET set). Lets `systemctl start` wait until we listen, and
/// `systemctl reload` until the new configuration is in force.
public enum ServiceNotifier {
    public static func ready() { notify("READY=1\nSTATUS=accepting connections") }
    public static func reloading() { notify("RELOADING=1") }
    public static func stopping() { notify("STOPPING=1\nSTATUS=draining sessions") }
    public static func status(_ text: String) { notify("STATUS=\(text)") }
    public static func watchdog(status text: String) { notify("WATCHDOG=1\nSTATUS=\(text)") }

    /// Whether a service manager listens (NOTIFY_SOCKET set).
    public static var isSupervised: Bool { getenv("NOTIFY_SOCKET") != nil }

    /// `WatchdogSec=` of the unit (WATCHDOG_USEC, for this pid), or nil when not set.
    public static func watchdogInterval() -> Duration? {
        var usec: UInt64 = 0
        guard sd_watchdog_enabled(0, &usec) > 0, usec > 0 else { return nil }
        return .microseconds(Int64(clamping: usec))
    }

    /// Listening sockets passed by socket activation (sd_listen_fds(3): LISTEN_FDS/LISTEN_PID,
    /// descriptors from SD_LISTEN_FDS_START). The variables are unset so that children do not
    /// inherit them; the descriptors are made non-blocking and close-on-exec.
    public static func listenFDs() -> [Int32] {
        let count = sd_listen_fds(1)
        guard count > 0 else { return [] }
        let first = Int32(SD_LISTEN_FDS_START)
        return (first..<first + count).map { fd in
            // A descriptor these fail on is refused at start-up anyway (not a listening socket).
            try? Socket.setNonBlocking(fd)
            _ = try? syscallValue { fcntl(fd, F_SETFD, FD_CLOEXEC) }
            return fd
        }
    }

    private static func notify(_ state: String) {
        _ = sd_notify(0, state)
    }
}
