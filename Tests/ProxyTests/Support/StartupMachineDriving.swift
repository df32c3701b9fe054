import Wire
@testable import Proxy

/// Drives a `ClientStartupMachine` as a client would, for the authentication tests: a startup
/// packet for database `app`, a password message, and the backend messages it answered with.
protocol StartupMachineDriving {}

extension StartupMachineDriving {
    func startup(_ user: String, _ m: inout ClientStartupMachine) -> ClientStartupMachine.Action {
        var b = ByteBuffer()
        StartupPacket(protocolMinor: 0, parameters: [.init(name: "user", value: user), .init(name: "database", value: "app")]).encode(into: &b)
        return m.bytesReceived(&b)
    }

    /// A password message; a check that needs PBKDF2 (``ClientStartupMachine/Action/deriveKeys(_:user:)``)
    /// is completed here, as the shell completes it off the loop.
    func password(_ text: String, _ m: inout ClientStartupMachine) -> ClientStartupMachine.Action {
        var b = ByteBuffer()
        FrontendMessage.passwordMessage(text).encode(into: &b)
        return derivingKeys(m.bytesReceived(&b), &m)
    }

    /// `action`, or what follows once the keys it asks for are derived.
    func derivingKeys(_ action: ClientStartupMachine.Action, _ m: inout ClientStartupMachine) -> ClientStartupMachine.Action {
        guard case .deriveKeys(let derivation, _) = action else { return action }
        return m.keysDerived(derivation.derive())
    }

    func messages(_ bytes: ByteBuffer) -> [BackendMessage] {
        var copy = bytes
        var out: [BackendMessage] = []
        let decoder = FrameDecoder(maxMessageLength: 1 << 20)
        while let frame = try? decoder.peekFrame(in: copy), let m = try? BackendMessage.decode(frame: frame, from: &copy) { out.append(m) }
        return out
    }
}
