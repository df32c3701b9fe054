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
    /// SCRAM pass-through: the ClientKey recovered from a client's proof and the ServerKey of
    /// the verifier it was checked against (RFC 5802 section 3), instead of a password. They
    /// authenticate as that role upstream with SCRAM only (`password=auth_query` identities).
    private let clientKey: [UInt8]?
    private let serverKey: [UInt8]?

    public init(_ value: String) {
        storage = value
        clientKey = nil
        serverKey = nil
    }

    public init(scramClientKey: [UInt8], serverKey: [UInt8]) {
        storage = ""
        clientKey = scramClientKey
        self.serverKey = serverKey
    }

    /// The pass-through keys, when this secret is one (then `reveal()` is empty). Call only
    /// where a SCRAM proof is computed.
    public func revealSCRAMKeys() -> (clientKey: [UInt8], serverKey: [UInt8])? {
        guard let clientKey, let serverKey else { return nil }
        return (clientKey, serverKey)
    }

    public var isSCRAMPassThrough: Bool { clientKey != nil }

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
