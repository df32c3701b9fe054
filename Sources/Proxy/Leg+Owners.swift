import EventLoop

// The one entry point each leg owner offers (``LegOwner``): the event is dispatched to the
// owner's own handling. Kept apart so the owners' files read as their own logic.

extension ClientSession {
    func legEvent(_ leg: Leg, _ event: LegEvent) {
        switch event {
        case .connected:
            break  // The client's leg is accepted, never connecting.
        case .handshakeCompleted: legHandshakeCompleted(leg)
        case .peekedFirstByte(let byte): legPeekedFirstByte(leg, byte: byte)
        case .received: legReceivedBytes(leg)
        case .drained: legDrained(leg)
        case .handshakeFailed(let reason): legHandshakeFailed(leg, reason: reason)
        case .closed(let reason): legClosed(leg, reason: reason)
        }
    }
}

extension UpstreamLink {
    func legEvent(_ leg: Leg, _ event: LegEvent) {
        switch event {
        case .connected(let error): legConnected(leg, error: error)
        case .handshakeCompleted: legHandshakeCompleted(leg)
        case .peekedFirstByte: break  // Only client legs peek.
        case .received: legReceivedBytes(leg)
        case .drained: legDrained(leg)
        case .handshakeFailed(let reason): legHandshakeFailed(leg, reason: reason)
        case .closed(let reason): legClosed(leg, reason: reason)
        }
    }
}

extension CancelForwarder {
    func legEvent(_ leg: Leg, _ event: LegEvent) {
        switch event {
        case .connected(let error): legConnected(leg, error: error)
        case .handshakeCompleted: legHandshakeCompleted(leg)
        case .peekedFirstByte: break
        case .received: legReceivedBytes(leg)
        case .drained: legDrained(leg)
        case .handshakeFailed(let reason): legHandshakeFailed(leg, reason: reason)
        case .closed(let reason): legClosed(leg, reason: reason)
        }
    }
}
