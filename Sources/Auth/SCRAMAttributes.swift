/// SCRAM mechanism names (RFC 7677; PostgreSQL docs 55.3 "SASL Authentication").
public enum SCRAMMechanism: String, Sendable, CaseIterable {
    case scramSHA256 = "SCRAM-SHA-256"
    case scramSHA256Plus = "SCRAM-SHA-256-PLUS"
}

/// The only channel-binding type PostgreSQL supports (RFC 5929 section 4).
let tlsServerEndPointName = "tls-server-end-point"

/// Reads the comma-separated `attr=value` pairs of SCRAM messages (RFC 5802 section 5.1),
/// reporting problems in terms both PostgreSQL's and libpq's error texts can be built from.
struct SCRAMAttributeReader {
    enum Problem: Error, Equatable {
        /// A specific attribute was required; `found` is nil at end of input.
        case expectedAttribute(UInt8, found: UInt8?)
        case expectedEquals(UInt8)
        case attributeExpectedAtEnd
        case invalidAttribute(UInt8)
    }

    let bytes: [UInt8]
    private(set) var position = 0

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    var atEnd: Bool { position >= bytes.count }
    var next: UInt8? { atEnd ? nil : bytes[position] }

    /// Consumes one byte (used for the single-letter gs2 flags and separators).
    mutating func skip() { position += 1 }

    /// Reads `attribute=value` and the comma after it, if any.
    mutating func read(_ attribute: UInt8) throws(Problem) -> [UInt8] {
        guard next == attribute else { throw .expectedAttribute(attribute, found: next) }
        position += 1
        return try readValue(of: attribute)
    }

    /// Reads any `ALPHA=value` pair (an extension or the proof).
    mutating func readAny() throws(Problem) -> (attribute: UInt8, value: [UInt8]) {
        guard let attribute = next else { throw .attributeExpectedAtEnd }
        guard (attribute >= UInt8(ascii: "A") && attribute <= UInt8(ascii: "Z"))
            || (attribute >= UInt8(ascii: "a") && attribute <= UInt8(ascii: "z")) else {
            throw .invalidAttribute(attribute)
        }
        position += 1
        return (attribute, try readValue(of: attribute))
    }

    private mutating func readValue(of attribute: UInt8) throws(Problem) -> [UInt8] {
        guard next == UInt8(ascii: "=") else { throw .expectedEquals(attribute) }
        position += 1
        let start = position
        while !atEnd, bytes[position] != UInt8(ascii: ",") { position += 1 }
        let value = Array(bytes[start..<position])
        if !atEnd { position += 1 }
        return value
    }
}

extension SCRAMAttributeReader.Problem {
    /// The errdetail PostgreSQL's backend (`auth-scram.c`) reports for this problem.
    var serverDetail: String {
        switch self {
        case .expectedAttribute(let attribute, let found):
            return "Expected attribute \"\(Character(Unicode.Scalar(attribute)))\" but found \"\(sanitized(found ?? 0))\"."
        case .expectedEquals(let attribute):
            return "Expected character \"=\" for attribute \"\(Character(Unicode.Scalar(attribute)))\"."
        case .attributeExpectedAtEnd:
            return "Attribute expected, but found end of string."
        case .invalidAttribute(let found):
            return "Attribute expected, but found invalid character \"\(sanitized(found))\"."
        }
    }

    /// The parenthesised part of libpq's (`fe-auth-scram.c`) "malformed SCRAM message (...)".
    var clientDetail: String {
        switch self {
        case .expectedAttribute(let attribute, _):
            return "attribute \"\(Character(Unicode.Scalar(attribute)))\" expected"
        case .expectedEquals(let attribute):
            return "expected character \"=\" for attribute \"\(Character(Unicode.Scalar(attribute)))\""
        case .attributeExpectedAtEnd:
            return "attribute expected, but found end of string"
        case .invalidAttribute:
            return "attribute expected, but found invalid character"
        }
    }
}

/// Printable ASCII as `'c'`, anything else as `0xNN`, as PostgreSQL's `sanitize_char`
/// (so error texts never echo control bytes from a hostile client).
func sanitized(_ byte: UInt8) -> String {
    if byte >= 0x21 && byte <= 0x7e { return "'\(Character(Unicode.Scalar(byte)))'" }
    let digits = Array("0123456789abcdef")
    return "0x\(digits[Int(byte >> 4)])\(digits[Int(byte & 0x0f)])"
}

/// RFC 5802 `printable`: %x21-2B / %x2D-7E (printable ASCII except the comma).
func isSCRAMPrintable(_ bytes: [UInt8]) -> Bool {
    bytes.allSatisfy { $0 >= 0x21 && $0 <= 0x7e && $0 != UInt8(ascii: ",") }
}

/// A fresh nonce as PostgreSQL and libpq make them: 18 random bytes, base64 encoded
/// (`SCRAM_RAW_NONCE_LEN`), which is always printable and comma-free.
func makeSCRAMNonce() -> [UInt8] {
    Base64.encodeToBytes(Crypto.randomBytes(18))
}

/// The GS2 header that starts client-first-message and is repeated, base64 encoded with the
/// channel-binding data, in client-final-message's `c=` attribute (RFC 5802 section 7).
func gs2Header(flag: UInt8) -> [UInt8] {
    switch flag {
    case UInt8(ascii: "p"): return Array("p=\(tlsServerEndPointName),,".utf8)
    default: return [flag, UInt8(ascii: ","), UInt8(ascii: ",")]
    }
}

/// AuthMessage = client-first-message-bare "," server-first-message "," client-final-message-without-proof
/// (RFC 5802 section 3).
func scramAuthMessage(clientFirstBare: [UInt8], serverFirst: [UInt8], clientFinalWithoutProof: [UInt8]) -> [UInt8] {
    clientFirstBare + [UInt8(ascii: ",")] + serverFirst + [UInt8(ascii: ",")] + clientFinalWithoutProof
}

func xor(_ lhs: [UInt8], _ rhs: [UInt8]) -> [UInt8] {
    precondition(lhs.count == rhs.count)
    return zip(lhs, rhs).map { $0 ^ $1 }
}
