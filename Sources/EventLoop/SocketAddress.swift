import Glibc
import CPortcullisShims

/// An IPv4, IPv6 or Unix-domain socket address.
public struct SocketAddress: Sendable, CustomStringConvertible {
    public var storage: sockaddr_storage
    public var length: socklen_t

    public init(storage: sockaddr_storage) {
        self.storage = storage
        switch Int32(storage.ss_family) {
        case AF_INET: length = socklen_t(MemoryLayout<sockaddr_in>.size)
        case AF_INET6: length = socklen_t(MemoryLayout<sockaddr_in6>.size)
        default: length = socklen_t(MemoryLayout<sockaddr_un>.size)
        }
    }

    /// A numeric host (IPv4 or IPv6 literal) and port; nil when `host` is not a literal.
    public init?(host: String, port: UInt16) {
        var s = sockaddr_storage()
        var len: socklen_t = 0
        guard pc_sockaddr_make(host, port, &s, &len) >= 0 else { return nil }
        storage = s
        length = len
    }

    public init?(unixPath: String) {
        var s = sockaddr_storage()
        var len: socklen_t = 0
        guard pc_sockaddr_un_make(unixPath, &s, &len) >= 0 else { return nil }
        storage = s
        length = len
    }

    /// Resolves a host name (or literal) with getaddrinfo; numeric hosts never touch DNS.
    public static func resolve(host: String, port: UInt16) -> [SocketAddress] {
        if let literal = SocketAddress(host: host, port: port) { return [literal] }
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_family = AF_UNSPEC
        var result: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, String(port), &hints, &result) == 0, let first = result else { return [] }
        defer { freeaddrinfo(first) }
        var addresses: [SocketAddress] = []
        var cursor: UnsafeMutablePointer<addrinfo>? = first
        while let info = cursor {
            if let sa = info.pointee.ai_addr {
                var s = sockaddr_storage()
                withUnsafeMutableBytes(of: &s) { dst in
                    dst.copyMemory(from: UnsafeRawBufferPointer(start: sa, count: Int(info.pointee.ai_addrlen)))
                }
                addresses.append(SocketAddress(storage: s))
            }
            cursor = info.pointee.ai_next
        }
        return addresses
    }

    public var family: Int32 { Int32(storage.ss_family) }
    public var isUnix: Bool { family == AF_UNIX }

    /// Numeric host as PostgreSQL logs it ("127.0.0.1", "::1", "[local]").
    public var host: String { describe().host }
    public var port: UInt16 { describe().port }

    private func describe() -> (host: String, port: UInt16) {
        var s = storage
        var buffer = [CChar](repeating: 0, count: 64)
        var port: UInt16 = 0
        var family: Int32 = 0
        pc_sockaddr_describe(&s, &buffer, buffer.count, &port, &family)
        return (String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self), port)
    }

    public var description: String {
        let d = describe()
        switch family {
        case AF_INET6: return "[\(d.host)]:\(d.port)"
        case AF_INET: return "\(d.host):\(d.port)"
        default: return d.host
        }
    }
}
