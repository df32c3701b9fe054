import Wire

/// Whether the session is at rest or idle, and its ending with a FATAL as the server would.
extension ClientSession {
    /// The server session may be reused (``SessionMachine/isAtRest``) and every byte between
    /// proxy and server is delivered: the one reuse decision, taken when the session returns
    /// its server connection.
    var isAtRest: Bool {
        // In place (SessionMachine+InPlace.swift): a plain read copies the whole machine.
        guard isEstablished, session?.inPlace({ $0.isAtRest }) == true, settingsExchange == nil else { return false }
        guard let server else {
            // Transaction pooling between transactions.
            return transactionPool != nil && link == nil && pendingCheckout == nil && client.inbound.readableBytes == 0
        }
        return server.outbound.readableBytes == 0 && server.inbound.readableBytes == 0
    }

    /// At rest, and the client has been sent everything (client_idle_timeout, buffer release).
    var isIdle: Bool { isAtRest && client.outbound.readableBytes == 0 }

    func releaseIdleBuffers() {
        client.releaseIdleBuffers()
        link?.leg?.releaseIdleBuffers()
    }

    /// Ends the session with a FATAL error as the server would. The error is only sent at a
    /// message boundary, so it cannot land inside another message.
    func terminate(sqlState: String, message: String) {
        if session?.statementInFlight != true {
            var out = ByteBuffer()
            BackendMessage.errorResponse(.error(sqlState: sqlState, message: message, severity: "FATAL")).encode(into: &out)
            client.send(out)
        }
        finish(reason: message, flushClient: true)
    }
}
