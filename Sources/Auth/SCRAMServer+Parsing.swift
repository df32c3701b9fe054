/// Parsing of the client's SCRAM messages with PostgreSQL's checks and error texts
/// (`read_client_first_message` / `read_client_final_message` in `auth-scram.c`).
extension SCRAMServer {
    struct ParsedClientFirst {
        let gs2Flag: UInt8
        let clientFirstBare: [UInt8]
        let clientNonce: [UInt8]
    }

    struct ParsedClientFinal {
        let nonce: [UInt8]
        let proof: [UInt8]
        let withoutProof: [UInt8]
    }

    private static let comma = UInt8(ascii: ",")

    /// client-first-message = gs2-header client-first-message-bare (RFC 5802 section 7).
    func parseClientFirst(_ data: [UInt8], channelBindingInUse: Bool) -> Result<ParsedClientFirst, SCRAMFailure> {
        var reader = SCRAMAttributeReader(data)
        let flag = reader.next ?? 0
        let missingBindingData = "The client selected SCRAM-SHA-256-PLUS, but the SCRAM message does not include channel binding data."
        switch flag {
        case UInt8(ascii: "n"), UInt8(ascii: "y"):
            if channelBindingInUse { return .failure(.malformed(missingBindingData)) }
            // "y": the client could bind but believes we cannot; since we offered PLUS, an
            // attacker must have removed it from the list (RFC 5802 section 6).
            if flag == UInt8(ascii: "y"), channelBinding != nil {
                return .failure(.invalidAuthorization(
                    "SCRAM channel binding negotiation error",
                    detail: "The client supports SCRAM channel binding but thinks the server does not.  "
                        + "However, this server does support channel binding."))
            }
            reader.skip()
            guard reader.next == Self.comma else {
                return .failure(.malformed("Comma expected, but found character \"\(sanitized(reader.next ?? 0))\"."))
            }
            reader.skip()
        case UInt8(ascii: "p"):
            guard channelBindingInUse else {
                return .failure(.malformed("The client selected SCRAM-SHA-256 without channel binding, but the SCRAM message includes channel binding data."))
            }
            let bindingType: [UInt8]
            do {
                bindingType = try reader.read(UInt8(ascii: "p"))
            } catch {
                return .failure(.malformed(error.serverDetail))
            }
            guard bindingType == Array(tlsServerEndPointName.utf8) else {
                return .failure(.protocolViolation("unsupported SCRAM channel-binding type \"\(sanitizedString(bindingType))\""))
            }
        default:
            return .failure(.malformed("Unexpected channel-binding flag \"\(sanitized(flag))\"."))
        }

        if reader.next == UInt8(ascii: "a") {
            return .failure(SCRAMFailure(sqlState: "0A000",
                                         message: "client uses authorization identity, but it is not supported"))
        }
        guard reader.next == Self.comma else {
            return .failure(.malformed("Unexpected attribute \"\(sanitized(reader.next ?? 0))\" in client-first-message."))
        }
        reader.skip()
        let bare = Array(data[reader.position...])
        if reader.next == UInt8(ascii: "m") {
            return .failure(SCRAMFailure(sqlState: "0A000", message: "client requires an unsupported SCRAM extension"))
        }
        let nonce: [UInt8]
        do {
            // The username attribute is ignored: the role comes from the StartupMessage.
            _ = try reader.read(UInt8(ascii: "n"))
            nonce = try reader.read(UInt8(ascii: "r"))
            guard isSCRAMPrintable(nonce) else {
                return .failure(.protocolViolation("non-printable characters in SCRAM nonce"))
            }
            // Optional extensions are allowed and ignored.
            while !reader.atEnd { _ = try reader.readAny() }
        } catch {
            return .failure(.malformed(error.serverDetail))
        }
        return .success(ParsedClientFirst(gs2Flag: flag, clientFirstBare: bare, clientNonce: nonce))
    }

    /// client-final-message = channel-binding "," nonce ["," extensions] "," proof.
    func parseClientFinal(_ data: [UInt8], exchange: Exchange) -> Result<ParsedClientFinal, SCRAMFailure> {
        var reader = SCRAMAttributeReader(data)
        do {
            let binding = try reader.read(UInt8(ascii: "c"))
            if exchange.channelBindingInUse, let channelBinding {
                // The client must have seen the same certificate we present; otherwise a
                // man in the middle terminated its TLS (RFC 5929 section 4).
                let expected = Base64.encodeToBytes(gs2Header(flag: UInt8(ascii: "p")) + channelBinding)
                guard Crypto.constantTimeEquals(binding, expected) else {
                    return .failure(.invalidAuthorization("SCRAM channel binding check failed"))
                }
            } else {
                // Without binding, "c=" repeats the gs2 header: "biws" = "n,,", "eSws" = "y,,".
                let matchesFlag = (binding == Array("biws".utf8) && exchange.gs2Flag == UInt8(ascii: "n"))
                    || (binding == Array("eSws".utf8) && exchange.gs2Flag == UInt8(ascii: "y"))
                guard matchesFlag else {
                    return .failure(.protocolViolation("unexpected SCRAM channel-binding attribute in client-final-message"))
                }
            }
            let nonce = try reader.read(UInt8(ascii: "r"))
            var proofStart: Int
            var attribute: UInt8
            var value: [UInt8]
            repeat {
                proofStart = reader.position - 1
                (attribute, value) = try reader.readAny()
            } while attribute != UInt8(ascii: "p")
            guard let proof = Base64.decode(bytes: value), proof.count == Crypto.sha256Length else {
                return .failure(.malformed("Malformed proof in client-final-message."))
            }
            guard reader.atEnd else {
                return .failure(.malformed("Garbage found at the end of client-final-message."))
            }
            return .success(ParsedClientFinal(nonce: nonce, proof: proof, withoutProof: Array(data[..<proofStart])))
        } catch {
            return .failure(.malformed(error.serverDetail))
        }
    }
}

/// As PostgreSQL's `sanitize_str`: at most 30 characters, non-printables replaced by "?".
func sanitizedString(_ bytes: [UInt8]) -> String {
    String(decoding: bytes.prefix(30).map { $0 >= 0x21 && $0 <= 0x7e ? $0 : UInt8(ascii: "?") }, as: UTF8.self)
}
