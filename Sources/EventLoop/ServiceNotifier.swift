import CPortcullisShims

/// systemd's readiness protocol (sd_notify(3)): a no-op unless started by systemd with
/// Type=notify (NOTIFY_SOCKET set). Lets `systemctl start` wait until we listen, and
/// `systemctl reload` until the new configuration is in force.
public enum ServiceNotifier {
    public static func ready() { notify("READY=1\nSTATUS=accepting connections") }
    public static func reloading() { notify("RELOADING=1") }
    public static func stopping() { notify("STOPPING=1\nSTATUS=draining sessions") }
    public static func status(_ text: String) { notify("STATUS=\(text)") }

    private static func notify(_ state: String) {
        _ = sd_notify(0, state)
    }
}
