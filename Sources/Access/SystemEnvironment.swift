#if canImport(Glibc)
import Glibc
#endif

// The thin shell around HbaEnvironment: the machine's interfaces and the system resolver,
// for the proxy. Matching itself never calls these; they are injected.

extension LocalInterface {
    /// The host's IPv4 and IPv6 interface addresses with their netmasks (getifaddrs), as
    /// pg_foreach_ifaddr enumerates them for samehost / samenet.
    public static func systemInterfaces() -> [LocalInterface] {
        var list: UnsafeMutablePointer<ifaddrs>?
        guard getifaddrs(&list) == 0, let first = list else { return [] }
        defer { freeifaddrs(list) }
        var result: [LocalInterface] = []
        var cursor: UnsafeMutablePointer<ifaddrs>? = first
        while let entry = cursor {
            defer { cursor = entry.pointee.ifa_next }
            guard let address = entry.pointee.ifa_addr, let netmask = entry.pointee.ifa_netmask,
                  let ip = IPAddress(sockaddr: address), let mask = IPAddress(sockaddr: netmask, family: ip.family)
            else { continue }
            result.append(LocalInterface(address: ip, netmask: mask))
        }
        return result
    }
}

extension IPAddress {
    /// From a sockaddr pointer (AF_INET / AF_INET6). `family` forces the interpretation for
    /// netmasks, whose sa_family some systems leave unset.
    init?(sockaddr pointer: UnsafePointer<sockaddr>, family: Family? = nil) {
        let actual = family ?? (Int32(pointer.pointee.sa_family) == AF_INET ? .v4
            : Int32(pointer.pointee.sa_family) == AF_INET6 ? .v6 : nil)
        switch actual {
        case .v4:
            let v4 = UnsafeRawPointer(pointer).loadUnaligned(as: sockaddr_in.self)
            self.init(bytes: withUnsafeBytes(of: v4.sin_addr.s_addr) { Array($0) })
        case .v6:
            let v6 = UnsafeRawPointer(pointer).loadUnaligned(as: sockaddr_in6.self)
            self.init(bytes: withUnsafeBytes(of: v6.sin6_addr) { Array($0) })
        case nil:
            return nil
        }
    }

    /// A sockaddr_in / sockaddr_in6 (port 0) holding this address.
    func withSockaddr<T>(_ body: (UnsafePointer<sockaddr>, socklen_t) -> T) -> T {
        if family == .v4 {
            var v4 = sockaddr_in()
            v4.sin_family = sa_family_t(AF_INET)
            withUnsafeMutableBytes(of: &v4.sin_addr) { $0.copyBytes(from: bytes) }
            return withUnsafePointer(to: &v4) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
        }
        var v6 = sockaddr_in6()
        v6.sin6_family = sa_family_t(AF_INET6)
        withUnsafeMutableBytes(of: &v6.sin6_addr) { $0.copyBytes(from: bytes) }
        return withUnsafePointer(to: &v6) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_in6>.size)) }
        }
    }
}

extension HostnameResolver {
    /// The system resolver, as check_hostname uses it: getnameinfo(NI_NAMEREQD) for the
    /// reverse lookup, getaddrinfo for the forward one. Blocking — call off the event loop.
    public static var system: HostnameResolver {
        HostnameResolver(
            reverseLookup: { address in
                var host = [CChar](repeating: 0, count: 1025)
                let status = address.withSockaddr { pointer, length in
                    getnameinfo(pointer, length, &host, socklen_t(host.count), nil, 0, NI_NAMEREQD)
                }
                guard status == 0 else { return nil }
                return String(decoding: host.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
            },
            forwardLookup: { name in
                var result: UnsafeMutablePointer<addrinfo>?
                guard getaddrinfo(name, nil, nil, &result) == 0 else { return nil }
                defer { freeaddrinfo(result) }
                var addresses: [IPAddress] = []
                var cursor = result
                while let entry = cursor {
                    if let address = entry.pointee.ai_addr, let ip = IPAddress(sockaddr: UnsafePointer(address)) {
                        addresses.append(ip)
                    }
                    cursor = entry.pointee.ai_next
                }
                return addresses
            }
        )
    }
}
