#if canImport(Glibc)
import Glibc
#endif

/// An IPv4 or IPv6 address as raw network-order bytes (4 or 16 of them).
///
/// pg_hba.conf compares addresses of the same family only (src/backend/libpq/hba.c
/// check_ip since PostgreSQL 12): an IPv4 rule never matches an IPv6 client, not even an
/// IPv4-mapped one, so the family is part of the value.
public struct IPAddress: Sendable, Hashable, CustomStringConvertible {
    public enum Family: Sendable, Hashable {
        case v4
        case v6
    }

    /// Network byte order; 4 bytes for `.v4`, 16 for `.v6`.
    public let bytes: [UInt8]

    public var family: Family { bytes.count == 4 ? .v4 : .v6 }

    /// Raw bytes; nil unless there are exactly 4 or 16.
    public init?(bytes: [UInt8]) {
        guard bytes.count == 4 || bytes.count == 16 else { return nil }
        self.bytes = bytes
    }

    /// Parses a numeric address the way `getaddrinfo(AI_NUMERICHOST)` does on glibc, which is
    /// what PostgreSQL uses for pg_hba.conf address and mask columns: IPv4 in inet_aton form
    /// (so "127.1" and "10" are accepted, as in PostgreSQL), IPv6 in inet_pton form.
    /// IPv6 zone suffixes ("%eth0") are not supported (PostgreSQL would accept them).
    public init?(parsing text: String) {
        if text.isEmpty || text.contains(where: { $0.isWhitespace }) { return nil }
        var v4 = in_addr()
        if inet_aton(text, &v4) != 0 {
            bytes = withUnsafeBytes(of: v4.s_addr) { Array($0) }
            return
        }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, text, &v6) == 1 {
            bytes = withUnsafeBytes(of: v6) { Array($0) }
            return
        }
        return nil
    }

    /// From a `sockaddr_in` / `sockaddr_in6` as raw bytes (e.g. from accept() or getpeername()).
    /// Returns nil for other families (AF_UNIX is "[local]", not an IPAddress).
    public init?(sockaddrBytes raw: [UInt8]) {
        guard raw.count >= 2 else { return nil }
        let family = raw.withUnsafeBytes { $0.loadUnaligned(as: sa_family_t.self) }
        switch Int32(family) {
        case AF_INET:
            guard raw.count >= MemoryLayout<sockaddr_in>.size else { return nil }
            let address = raw.withUnsafeBytes { $0.loadUnaligned(as: sockaddr_in.self) }
            bytes = withUnsafeBytes(of: address.sin_addr.s_addr) { Array($0) }
        case AF_INET6:
            guard raw.count >= MemoryLayout<sockaddr_in6>.size else { return nil }
            let address = raw.withUnsafeBytes { $0.loadUnaligned(as: sockaddr_in6.self) }
            bytes = withUnsafeBytes(of: address.sin6_addr) { Array($0) }
        default:
            return nil
        }
    }

    /// An IPv4-mapped IPv6 address (::ffff:a.b.c.d) as the IPv4 address; others unchanged.
    /// PostgreSQL sets IPV6_V6ONLY on its IPv6 sockets, so it never sees mapped addresses: a
    /// proxy listening dual-stack should unmap before matching to decide as PostgreSQL would.
    public var unmappingIPv4: IPAddress {
        guard bytes.count == 16, bytes[0..<10].allSatisfy({ $0 == 0 }), bytes[10] == 0xFF, bytes[11] == 0xFF else { return self }
        return IPAddress(bytes: Array(bytes[12..<16])) ?? self
    }

    /// An all-ones-prefix mask of `bits` for `family`, as pg_sockaddr_cidr_mask builds it.
    public static func mask(bits: Int, family: Family) -> IPAddress? {
        let total = family == .v4 ? 32 : 128
        guard bits >= 0, bits <= total else { return nil }
        var result = [UInt8](repeating: 0, count: total / 8)
        for index in 0..<result.count {
            let remaining = bits - index * 8
            if remaining >= 8 {
                result[index] = 0xFF
            } else if remaining > 0 {
                result[index] = UInt8(truncatingIfNeeded: 0xFF << (8 - remaining))
            }
        }
        return IPAddress(bytes: result)
    }

    /// The CIDR suffix as pg_sockaddr_cidr_mask accepts it: decimal digits only
    /// (strtol with the whole string consumed), 0...32 or 0...128.
    static func cidrMask(_ text: String, family: Family) -> IPAddress? {
        guard !text.isEmpty else { return nil }
        var digits = Substring(text)
        var negative = false
        if let first = digits.first, first == "+" || first == "-" {
            negative = first == "-"
            digits = digits.dropFirst()
        }
        guard !digits.isEmpty, digits.allSatisfy({ $0.isASCII && $0.isNumber }) else { return nil }
        guard let value = Int(digits) else { return nil }
        return mask(bits: negative ? -value : value, family: family)
    }

    /// Whether `self` lies in `network`/`mask` (pg_range_sockaddr); false across families.
    public func isIn(network: IPAddress, mask: IPAddress) -> Bool {
        guard bytes.count == network.bytes.count, bytes.count == mask.bytes.count else { return false }
        for index in bytes.indices where (bytes[index] ^ network.bytes[index]) & mask.bytes[index] != 0 {
            return false
        }
        return true
    }

    /// Numeric form as PostgreSQL prints a client address (getnameinfo NI_NUMERICHOST):
    /// "127.0.0.1", "::1", "::ffff:10.0.0.1".
    public var description: String {
        var buffer = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN) + 1)
        let family = bytes.count == 4 ? AF_INET : AF_INET6
        let ok = bytes.withUnsafeBytes { raw in
            inet_ntop(family, raw.baseAddress, &buffer, socklen_t(buffer.count)) != nil
        }
        guard ok else { return "?" }
        return String(decoding: buffer.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
