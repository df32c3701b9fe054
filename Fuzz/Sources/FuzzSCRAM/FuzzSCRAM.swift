import FuzzSupport
@testable import Auth

/// SCRAM-SHA-256[-PLUS] message parsing, both halves (SCRAMServer with its
/// SCRAMServer+Parsing, SCRAMClient, SCRAMAttributeReader), plus the stored verifier form.
///
/// The input is lines: the first picks the role, the rest are the messages of one exchange.
///   S / T / U  server without TLS / with tls-server-end-point binding / for an unknown role;
///              line 2 is the mechanism, line 3 the SASLInitialResponse data ("-" = none),
///              further lines SASLResponse data.
///   C / Y / P  client (no TLS / TLS but no PLUS / PLUS); line 2 is server-first, line 3
///              server-final.
///   anything else: every line as a stored verifier and as base64.
/// The fixed nonces and the "pencil" verifier are RFC 7677's, so the seed corpus holds a
/// complete successful exchange the fuzzer can mutate.
///
/// Properties: the mock exchange for an unknown role never authenticates; nothing is sent
/// after a failure or after the final message; a client only reports the server verified
/// after server-final.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzSCRAM(_ data: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    let input = FuzzInput(data, count)
    let lines = input.parts(separatedBy: UInt8(ascii: "\n"), limit: 8)
    switch lines[0].first {
    case UInt8(ascii: "S"): server(lines.dropFirst(), verifier: rfcVerifier, binding: nil)
    case UInt8(ascii: "T"): server(lines.dropFirst(), verifier: rfcVerifier, binding: channelBindingHash)
    case UInt8(ascii: "U"): server(lines.dropFirst(), verifier: nil, binding: nil)
    case UInt8(ascii: "C"): client(lines.dropFirst(), binding: .notSupported)
    case UInt8(ascii: "Y"): client(lines.dropFirst(), binding: .supportedButNotUsed)
    case UInt8(ascii: "P"): client(lines.dropFirst(), binding: .tlsServerEndPoint(channelBindingHash))
    default:
        for line in lines {
            let text = String(decoding: line, as: UTF8.self)
            if let verifier = SCRAMVerifier(parsing: text) {
                fuzzCheck(SCRAMVerifier(parsing: verifier.text) == verifier, "verifier text does not round-trip")
            }
            if let decoded = Base64.decode(bytes: line) {
                fuzzCheck(Base64.decode(bytes: Base64.encodeToBytes(decoded)) == decoded, "base64 does not round-trip")
            }
        }
    }
    return 0
}

private let rfcVerifier = SCRAMVerifier.make(password: "pencil", salt: Base64.decode("W22ZaJ0SNY7soEsUEjb6gQ==") ?? [],
                                             iterations: 4096)
private let channelBindingHash = Crypto.sha256(Array("certificate".utf8))

private func server(_ lines: ArraySlice<[UInt8]>, verifier: SCRAMVerifier?, binding: [UInt8]?) {
    var server = SCRAMServer(verifier: verifier, mockSeed: Array("mock seed".utf8), username: "user",
                             channelBinding: binding, serverNonce: "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0")
    guard let mechanism = lines.first else { return }
    var messages = lines.dropFirst()
    guard let first = messages.popFirst() else { return }
    var action = server.initialResponseReceived(mechanism: String(decoding: mechanism, as: UTF8.self),
                                                data: first == Array("-".utf8) ? nil : first)
    while true {
        switch action {
        case .fail:
            fuzzCheck(!server.isAuthenticated, "authenticated after a failure")
            if let next = messages.popFirst() {
                fuzzCheck(server.responseReceived(next) == .fail(.invalidExchangeState), "a failed exchange went on")
            }
            return
        case .sendFinal:
            fuzzCheck(server.isAuthenticated, "final message without authentication")
            fuzzCheck(verifier != nil, "the mock exchange for an unknown role authenticated")
            if let next = messages.popFirst() {
                fuzzCheck(server.responseReceived(next) == .fail(.invalidExchangeState), "a finished exchange went on")
                fuzzCheck(!server.isAuthenticated, "still authenticated after a message past the end")
            }
            return
        case .sendContinue:
            fuzzCheck(!server.isAuthenticated, "authenticated before the final message")
            guard let next = messages.popFirst() else { return }
            action = server.responseReceived(next)
        }
    }
}

private func client(_ lines: ArraySlice<[UInt8]>, binding: SCRAMChannelBinding) {
    var client = SCRAMClient(username: "user", password: "pencil", channelBinding: binding,
                             clientNonce: "rOprNGfwEbeRWgbNEkqO", messageUsername: "user")
    _ = client.clientFirstMessage()
    guard let serverFirst = lines.first else { return }
    // The iteration count is the server's to choose (up to 2^31-1, as in libpq); bounded here
    // only so that one input cannot spend minutes in PBKDF2.
    guard iterationCountIsSmall(serverFirst) else { return }
    do {
        _ = try client.serverFirstReceived(serverFirst)
    } catch {
        fuzzCheck(!client.isServerVerified, "verified after a bad server-first")
        return
    }
    fuzzCheck(!client.isServerVerified, "verified before server-final")
    guard lines.count > 1 else { return }
    let serverFinal = lines[lines.startIndex + 1]
    do {
        try client.serverFinalReceived(serverFinal)
        fuzzCheck(client.isServerVerified, "server-final accepted without verification")
    } catch {
        fuzzCheck(!client.isServerVerified, "verified after a bad server-final")
    }
}

/// False when some `i=` attribute holds more than 4096 as a plain number.
private func iterationCountIsSmall(_ message: [UInt8]) -> Bool {
    for attribute in message.split(separator: UInt8(ascii: ","), omittingEmptySubsequences: false)
    where attribute.starts(with: Array("i=".utf8)) {
        let digits = attribute.dropFirst(2)
        guard digits.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) else { continue }
        if digits.count > 4 || Int(String(decoding: digits, as: UTF8.self)) ?? 0 > 4096 { return false }
    }
    return true
}
