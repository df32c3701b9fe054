import XCTest

@testable import Access

final class IPAddressTests: XCTestCase {
    func testParsingAndPrinting() {
        XCTAssertEqual(IPAddress(parsing: "127.0.0.1")?.bytes, [127, 0, 0, 1])
        XCTAssertEqual(IPAddress(parsing: "127.1")?.description, "127.0.0.1", "inet_aton forms, as getaddrinfo accepts them")
        XCTAssertEqual(IPAddress(parsing: "::1")?.description, "::1")
        XCTAssertEqual(IPAddress(parsing: "0:0:0:0:0:ffff:a01:203")?.description, "::ffff:10.1.2.3")
        XCTAssertNil(IPAddress(parsing: "1.2.3.256"))
        XCTAssertNil(IPAddress(parsing: "example.com"))
        XCTAssertNil(IPAddress(parsing: ""))
    }

    func testUnmappingIPv4() {
        XCTAssertEqual(ip("::ffff:10.1.2.3").unmappingIPv4, ip("10.1.2.3"))
        XCTAssertEqual(ip("::1").unmappingIPv4, ip("::1"))
        XCTAssertEqual(ip("10.1.2.3").unmappingIPv4, ip("10.1.2.3"))
    }

    func testMasksAndRanges() {
        XCTAssertEqual(IPAddress.mask(bits: 20, family: .v4)?.description, "255.255.240.0")
        XCTAssertEqual(IPAddress.cidrMask("0", family: .v6)?.description, "::")
        XCTAssertNil(IPAddress.cidrMask("33", family: .v4))
        XCTAssertNil(IPAddress.cidrMask("", family: .v4))
        XCTAssertNil(IPAddress.cidrMask("8x", family: .v4))
        XCTAssertTrue(ip("10.200.3.4").isIn(network: ip("10.0.0.0"), mask: ip("255.0.0.0")))
        XCTAssertFalse(ip("11.0.0.1").isIn(network: ip("10.0.0.0"), mask: ip("255.0.0.0")))
        XCTAssertFalse(ip("::ffff:10.0.0.1").isIn(network: ip("10.0.0.0"), mask: ip("255.0.0.0")), "no IPv4-in-IPv6 promotion since PostgreSQL 12")
    }

    func testFromSockaddrBytes() {
        var v4 = sockaddr_in()
        v4.sin_family = sa_family_t(AF_INET)
        v4.sin_addr.s_addr = UInt32(0x0100007F)  // 127.0.0.1 in network order on little-endian hosts
        let v4Bytes = withUnsafeBytes(of: v4) { Array($0) }
        XCTAssertEqual(IPAddress(sockaddrBytes: v4Bytes)?.bytes, withUnsafeBytes(of: v4.sin_addr.s_addr) { Array($0) })
        var v6 = sockaddr_in6()
        v6.sin6_family = sa_family_t(AF_INET6)
        v6.sin6_addr.__in6_u.__u6_addr8.15 = 1
        XCTAssertEqual(IPAddress(sockaddrBytes: withUnsafeBytes(of: v6) { Array($0) })?.description, "::1")
        XCTAssertNil(IPAddress(sockaddrBytes: [1, 0]))
    }
}

/// The Glibc shell pieces: the machine always has a loopback interface and resolves itself.
final class SystemEnvironmentTests: XCTestCase {
    func testSystemInterfacesIncludeLoopback() {
        let interfaces = LocalInterface.systemInterfaces()
        XCTAssertTrue(interfaces.contains { $0.address == ip("127.0.0.1") && $0.netmask == ip("255.0.0.0") }, "\(interfaces)")
    }

    func testSystemResolverForwardLookupOfLocalhost() throws {
        let addresses = try XCTUnwrap(HostnameResolver.system.forwardLookup("localhost"))
        XCTAssertTrue(addresses.contains(ip("127.0.0.1")) || addresses.contains(ip("::1")), "\(addresses)")
        XCTAssertNil(HostnameResolver.system.forwardLookup("no-such-host.invalid"))
    }
}
