import Session
import Wire

/// Transaction pooling: the shell of ``SettingsExchange`` — the proxy's own queries that read a
/// client's session-level settings after a transaction that may have changed them, and make a
/// server's settings the client's before its next transaction. The session machine sees none of
/// it: client bytes wait while an exchange runs, and its replies (ParameterStatus included) are
/// consumed here.
extension ClientSession {
    func startSettingsExchange(_ purpose: SettingsExchange.Purpose) {
        guard let server else { return }
        settingsExchange = SettingsExchange(purpose)
        let query = purpose == .capture ? SettingsExchange.captureQuery : SettingsExchange.applyQuery(clientSettings)
        var out = ByteBuffer()
        FrontendMessage.query(query).encode(into: &out)
        server.send(out)
    }

    /// The server's replies to the exchange under way.
    func continueSettingsExchange() {
        guard var exchange = settingsExchange, let server, let link else { return }
        let decoder = FrameDecoder(maxMessageLength: 1 << 24)
        do {
            while let frame = try decoder.peekFrame(in: server.inbound), server.inbound.readableBytes >= frame.totalLength {
                let message = try BackendMessage.decode(frame: frame, from: &server.inbound)
                switch exchange.received(message) {
                case .more:
                    continue
                case .finished(let settings):
                    settingsExchange = nil
                    server.inbound.discardReadBytes()
                    if exchange.purpose == .capture {
                        clientSettings = settings
                        session?.settingsCaptured()
                    }
                    link.appliedSettings = clientSettings
                    return settingsExchangeFinished()
                case .failed(let reason):
                    settingsExchange = nil
                    link.appliedSettings = nil
                    logger.warning("session settings could not be \(exchange.purpose == .capture ? "read" : "restored"): \(reason)")
                    return terminate(sqlState: SQLState.connectionFailure,
                                     message: "could not restore the session's settings on a pooled server connection: \(reason)")
                }
            }
        } catch {
            settingsExchange = nil
            link.appliedSettings = nil
            return finish(reason: "invalid message from server: \(error.message)", flushClient: true)
        }
        settingsExchange = exchange
    }

    private func settingsExchangeFinished() {
        if client.inbound.readableBytes > 0 {
            // The client went on meanwhile: its bytes go up on this server.
            forwardClientBytes()
        } else {
            releaseServerIfDone()
        }
    }
}
