import XCTest

@testable import Config

final class SettingValueTests: XCTestCase {
    func testDurationUnits() throws {
        XCTAssertEqual(try SettingValue.duration("15s"), .seconds(15))
        XCTAssertEqual(try SettingValue.duration("500ms"), .milliseconds(500))
        XCTAssertEqual(try SettingValue.duration("5min"), .seconds(300))
        XCTAssertEqual(try SettingValue.duration("1h"), .seconds(3600))
        XCTAssertEqual(try SettingValue.duration("1d"), .seconds(86400))
        XCTAssertEqual(try SettingValue.duration("42"), .seconds(42), "a bare number means seconds")
        XCTAssertEqual(try SettingValue.duration("0"), .zero)
        XCTAssertEqual(try SettingValue.duration("30 s"), .seconds(30), "whitespace before the unit is allowed")
    }

    func testDurationRejections() {
        for text in ["", "s", "-5s", "1.5h", "5S", "5 sec", "10m", "5min30s", "99999999999999999999", "1000000000d"] {
            XCTAssertThrowsError(try SettingValue.duration(text), "\"\(text)\" should be rejected")
        }
    }

    func testSizeUnits() throws {
        XCTAssertEqual(try SettingValue.size("8kB"), 8192)
        XCTAssertEqual(try SettingValue.size("16MB"), 16 << 20)
        XCTAssertEqual(try SettingValue.size("1GB"), 1 << 30)
        XCTAssertEqual(try SettingValue.size("1TB"), 1 << 40)
        XCTAssertEqual(try SettingValue.size("100B"), 100)
        XCTAssertEqual(try SettingValue.size("4096"), 4096, "a bare number means bytes")
        XCTAssertEqual(try SettingValue.size("2 MB"), 2 << 20)
    }

    func testSizeRejections() {
        for text in ["", "kB", "8KB", "8kb", "8 k", "-1", "1.5MB", "9999999999TB"] {
            XCTAssertThrowsError(try SettingValue.size(text), "\"\(text)\" should be rejected")
        }
    }

    func testSizeRangeMessageUsesUnits() {
        XCTAssertThrowsError(try SettingValue.size("100", in: 8192...(1 << 30))) { error in
            XCTAssertEqual((error as? SettingError)?.message, "100 is outside the valid range 8kB .. 1GB")
        }
    }

    /// The accepted spellings are those of PostgreSQL's parse_bool_with_len.
    func testBooleanSpellings() throws {
        for text in ["on", "ON", "true", "t", "tr", "TRUE", "yes", "y", "Ye", "1"] {
            XCTAssertTrue(try SettingValue.boolean(text), text)
        }
        for text in ["off", "of", "OFF", "false", "f", "fal", "no", "n", "0"] {
            XCTAssertFalse(try SettingValue.boolean(text), text)
        }
        for text in ["", "o", "2", "truex", "onn", "offf", "nope", "yess", "01"] {
            XCTAssertThrowsError(try SettingValue.boolean(text), "\"\(text)\" should be rejected")
        }
    }

    func testOctalPermissions() throws {
        XCTAssertEqual(try SettingValue.octalPermissions("0777"), 0o777)
        XCTAssertEqual(try SettingValue.octalPermissions("0770"), 0o770)
        XCTAssertEqual(try SettingValue.octalPermissions("0700"), 0o700)
        XCTAssertEqual(try SettingValue.octalPermissions("00"), 0)
        for text in ["777", "0", "0778", "0x1ff", "01000", "rwx", ""] {
            XCTAssertThrowsError(try SettingValue.octalPermissions(text), "\"\(text)\" should be rejected")
        }
    }

    func testListenAddresses() throws {
        XCTAssertEqual(try SettingValue.listenAddresses("localhost"), ["127.0.0.1", "::1"])
        XCTAssertEqual(try SettingValue.listenAddresses("LocalHost"), ["127.0.0.1", "::1"])
        XCTAssertEqual(try SettingValue.listenAddresses("*"), ["0.0.0.0", "::"])
        XCTAssertEqual(try SettingValue.listenAddresses(""), [])
        XCTAssertEqual(try SettingValue.listenAddresses("192.0.2.1 , ::ffff:192.0.2.2"), ["192.0.2.1", "::ffff:192.0.2.2"])
        for text in ["256.0.0.1", "example.com", "1.2.3", "::1::", "fe80::1%eth0", "*, localhost", ","] {
            XCTAssertThrowsError(try SettingValue.listenAddresses(text), "\"\(text)\" should be rejected")
        }
        XCTAssertThrowsError(try SettingValue.listenAddresses("*, 0.0.0.0"), "overlapping entries are a mistake")
    }

    func testSocketDirectories() throws {
        XCTAssertEqual(try SettingValue.socketDirectories("/tmp/, /run/pg//"), ["/tmp", "/run/pg"])
        XCTAssertEqual(try SettingValue.socketDirectories("/"), ["/"])
        XCTAssertEqual(SettingValue.socketPath(directory: "/", port: 6432), "/.s.PGSQL.6432")
        XCTAssertEqual(SettingValue.socketPath(directory: "/tmp", port: 5), "/tmp/.s.PGSQL.5")
        XCTAssertThrowsError(try SettingValue.socketDirectories("/tmp, /tmp/"))
        XCTAssertThrowsError(try SettingValue.socketDirectories("tmp"))
    }

    func testChoiceIsCaseInsensitiveAndListsValidValues() throws {
        XCTAssertEqual(try SettingValue.choice("Scram-SHA-256", of: AuthMethod.self), .scramSHA256)
        XCTAssertEqual(try SettingValue.choice("tlsv1.3", of: TLSProtocolVersion.self), .tls13)
        XCTAssertThrowsError(try SettingValue.choice("password", of: AuthMethod.self)) { error in
            XCTAssertEqual(
                (error as? SettingError)?.message,
                "\"password\" is not valid; expected one of: trust, reject, scram-sha-256")
        }
    }

    func testBase64IsStrict() {
        XCTAssertEqual(Base64.decode("AAECAwQFBgcICQoLDA0ODw=="), Array(0..<16))
        XCTAssertEqual(Base64.decode("+/8="), [0xFB, 0xFF])
        XCTAssertEqual(Base64.decode("TWFu"), Array("Man".utf8))
        XCTAssertEqual(Base64.decode(""), [])
        for text in ["AAE", "AA=A", "A===", "AAECAwQFBgcICQoLDA0ODw", "AA==AAAA", "AA-_", "AA AA"] {
            XCTAssertNil(Base64.decode(Substring(text)), "\"\(text)\" should be rejected")
        }
    }
}
