import Session
import Wire

/// Transaction pooling: the shell of ``SettingsExchange`` — the proxy's own queries that read a
/// client's session-level settings after a transaction that may have changed them, and make a
/// server's settings the client's before its next transaction. The session machine sees none of
/// it: client bytes wait while an exchange runs, and its replies (ParameterStatus included) are
/// consumed here.
///
/// None of it ends the client's session (found in review: each failure was a FATAL 08006):
///
/// - the client's cancel key stands for no backend while an exchange runs, so its CancelRequest
///   is ignored as one for an idle backend is, and never cancels the proxy's query;
/// - settings that cannot be read back (a value over ``SettingsExchange/maxCarriedValueBytes``,
///   or a capture the server failed ``maxSettingsApplyAttempts`` times) stay where they are: the session keeps its server
///   connection (pinned, ``SessionStateEffects/unmovableSetting``) until a DISCARD ALL;
/// - settings a server refuses on restore (temp_buffers after that backend accessed temporary
///   tables) close that server connection — its history is the cause — and the client gets
///   another, up to ``maxSettingsApplyAttempts`` tries; then it goes on without those settings,
///   logged.
extension ClientSession {
    /// Server connections tried in turn for one transaction whose settings they refuse, and
    /// captures tried in turn before the session keeps its server.
    static let maxSettingsApplyAttempts: UInt8 = 3

    func startSettingsExchange(_ purpose: SettingsExchange.Purpose) {
        guard let server else { return }
        // The proxy's own queries: a cancel now would reach them, not anything of the client's.
        if let cancelBinding { _ = shared.cancelRegistry.attach(cancelBinding, backend: nil) }
        settingsExchange = SettingsExchange(purpose, settings: clientSettings)
        var out = ByteBuffer()
        for query in SettingsExchange.messages(purpose, settings: clientSettings) { FrontendMessage.query(query).encode(into: &out) }
        server.send(out)
    }

    /// The client's cancel key stands for the attached backend again (its statements go up).
    func attachCancelBinding() {
        guard let cancelBinding, let link else { return }
        shared.cancelRegistry.attach(cancelBinding, backend: (link.processID, link.secretKey), destination: transactionPool?.cancelDestination)
    }

    /// The server's replies to the exchange under way.
    func continueSettingsExchange() {
        guard var exchange = settingsExchange, let server, let link else { return }
        let decoder = FrameDecoder(maxMessageLength: 1 << 24)
        do {
            while let frame = try decoder.peekFrame(in: server.inbound), server.inbound.readableBytes >= frame.totalLength {
                let message = try BackendMessage.decode(frame: frame, from: &server.inbound)
                let step = exchange.received(message)
                if case .more = step { continue }
                settingsExchange = nil
                server.inbound.discardReadBytes()
                switch step {
                case .more:
                    continue
                case .finished(let outcome) where exchange.purpose == .capture:
                    return settingsCaptured(outcome, link: link)
                case .finished(let outcome):
                    return settingsApplied(outcome, link: link)
                case .failed(let reason):
                    return settingsNotCaptured(reason, link: link)
                }
            }
        } catch {
            settingsExchange = nil
            link.appliedSettings = nil
            return finish(reason: "invalid message from server: \(error.message)", flushClient: true)
        }
        settingsExchange = exchange
    }

    private func settingsCaptured(_ outcome: SettingsExchange.Outcome, link: UpstreamLink) {
        settingsApplyAttempts = 0
        clientSettings = outcome.settings
        session?.settingsCaptured()
        link.appliedSettings = clientSettings
        if !outcome.tooLarge.isEmpty {
            logger.warning("session settings longer than \(SettingsExchange.maxCarriedValueBytes) bytes cannot move between server connections: \(outcome.tooLarge.joined(separator: ", ")); the session keeps its server connection until DISCARD ALL",
                           metadata: ["backend_pid": "\(link.processID)"])
            // This server holds more than the settings carried.
            link.appliedSettings = nil
            session?.settingsCannotMove()
        }
        settingsExchangeFinished()
    }

    private func settingsNotCaptured(_ reason: String, link: UpstreamLink) {
        link.appliedSettings = nil
        settingsApplyAttempts += 1
        if settingsApplyAttempts < Self.maxSettingsApplyAttempts {
            // A cancel that was already on its way, or the client's own statement_timeout
            // striking a trivial statement before the capture set it aside: once more.
            logger.info("session settings could not be read (\(reason)); reading them again", metadata: ["backend_pid": "\(link.processID)"])
            return startSettingsExchange(.capture)
        }
        settingsApplyAttempts = 0
        logger.warning("session settings could not be read: \(reason); the session keeps its server connection, which holds them, until DISCARD ALL",
                       metadata: ["backend_pid": "\(link.processID)"])
        session?.settingsCannotMove()
        settingsExchangeFinished()
    }

    private func settingsApplied(_ outcome: SettingsExchange.Outcome, link: UpstreamLink) {
        guard !outcome.failed.isEmpty else {
            settingsApplyAttempts = 0
            link.appliedSettings = clientSettings
            return settingsExchangeFinished()
        }
        let refused = outcome.failed.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)" }.joined(separator: "; ")
        link.appliedSettings = nil
        settingsApplyAttempts += 1
        if settingsApplyAttempts < Self.maxSettingsApplyAttempts {
            // Its history refuses them (temp_buffers once temporary tables were accessed): not
            // handed to anyone again; another connection, or a new one, takes them.
            logger.warning("server connection closed: it refused the session's settings (\(refused)); trying another",
                           metadata: ["backend_pid": "\(link.processID)"])
            self.link = nil
            _ = session?.serverDetached()
            link.leg?.readPaused = false
            pool.checkin(link, reusable: false)
            return acquireServer()
        }
        settingsApplyAttempts = 0
        logger.warning("session settings refused by every server connection tried; the session goes on without them: \(refused)",
                       metadata: ["backend_pid": "\(link.processID)"])
        for name in outcome.failed.keys { clientSettings[name] = nil }
        settingsExchangeFinished()
    }

    private func settingsExchangeFinished() {
        attachCancelBinding()
        if client.inbound.readableBytes > 0 {
            // The client went on meanwhile: its bytes go up on this server.
            forwardClientBytes()
        } else {
            releaseServerIfDone()
        }
    }
}
