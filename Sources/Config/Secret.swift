/// A credential taken from the configuration file (`password`, `server_password`, or a
/// `password=` inside a [databases] connection string).
///
/// Every textual and reflective view of a `Secret` prints `********`, so a configuration value
/// that reaches a log line, an error message or `dump()` never discloses the credential.
/// Code that genuinely needs the value (the upstream authentication exchange) calls `reveal()`,
/// which keeps every such use visible in review.
public struct Secret: Sendable, Equatable, CustomStringConvertible, CustomDebugStringConvertible,
    CustomReflectable
{
    private let storage: String

    public init(_ value: String) {
        storage = value
    }

    /// The credential itself. Call only where the value is sent to a peer or decrypted.
    public func reveal() -> String {
        storage
    }

    /// True for values of the form `enc:...`, which are decrypted with `secret_key_file`
    /// before use.
    public var isEncrypted: Bool {
        storage.hasPrefix("enc:")
    }

    public var description: String { "********" }
    public var debugDescription: String { "********" }
    public var customMirror: Mirror { Mirror(self, children: [], displayStyle: .struct) }
}
