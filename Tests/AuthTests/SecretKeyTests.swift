import XCTest
import Glibc
@testable import Auth

final class SecretKeyTests: XCTestCase {
    func testRoundTripWithFreshNoncesAndTamperDetection() throws {
        let key = try SecretKey(bytes: Array(repeating: 7, count: 32))
        let a = key.encrypt("app_rw_pw")
        let b = key.encrypt("app_rw_pw")
        XCTAssertTrue(a.hasPrefix("enc:v1:"))
        XCTAssertNotEqual(a, b, "every value has its own nonce")
        XCTAssertFalse(a.contains("app_rw_pw"))
        XCTAssertEqual(try key.decrypt(a), "app_rw_pw")
        XCTAssertEqual(try key.decrypt(key.encrypt("")), "")

        // Flip one bit of the ciphertext: the tag must catch it.
        var blob = Base64.decode(String(a.dropFirst("enc:v1:".count)))!
        blob[13] ^= 1
        XCTAssertThrowsError(try key.decrypt("enc:v1:" + Base64.encode(blob))) { error in
            XCTAssertFalse(String(describing: error).contains("app_rw_pw"))
        }
        let other = try SecretKey(bytes: Array(repeating: 8, count: 32))
        XCTAssertThrowsError(try other.decrypt(a), "a different key must not open it")
        XCTAssertThrowsError(try key.decrypt("enc:v2:xyz"))
        XCTAssertThrowsError(try SecretKey(bytes: [1, 2, 3]))
    }

    func testKeyFileMustBePrivateAndExactlyThirtyTwoBytes() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sk-\(getpid())-\(UInt32.random(in: 0...UInt32.max))").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = "\(dir)/secret.key"
        FileManager.default.createFile(atPath: path, contents: Data(SecretKey.generateBytes()))
        chmod(path, 0o600)
        let key = try SecretKey.load(path: path)
        XCTAssertEqual(try key.decrypt(key.encrypt("x")), "x")
        chmod(path, 0o640)
        XCTAssertThrowsError(try SecretKey.load(path: path)) { error in
            XCTAssertTrue(String(describing: error).contains("group or world access"))
        }
        FileManager.default.createFile(atPath: path, contents: Data(repeating: 1, count: 31))
        chmod(path, 0o600)
        XCTAssertThrowsError(try SecretKey.load(path: path))
    }

    /// No symbolic links (O_NOFOLLOW) and the owner must be this process's user or root, as
    /// PostgreSQL requires of ssl_key_file.
    func testKeyFileIsNotFollowedThroughSymlinksAndOwnerIsChecked() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sk-\(getpid())-\(UInt32.random(in: 0...UInt32.max))").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = "\(dir)/secret.key"
        FileManager.default.createFile(atPath: path, contents: Data(SecretKey.generateBytes()))
        chmod(path, 0o600)
        XCTAssertEqual(symlink(path, "\(dir)/link.key"), 0)
        XCTAssertThrowsError(try SecretKey.load(path: "\(dir)/link.key")) { error in
            XCTAssertTrue(String(describing: error).contains("symbolic link"), "\(error)")
        }
        XCTAssertNoThrow(try SecretKey.load(path: path))
        if geteuid() == 0 {
            XCTAssertEqual(chown(path, 65534, 65534), 0)
            XCTAssertThrowsError(try SecretKey.load(path: path)) { error in
                XCTAssertTrue(String(describing: error).contains("must be owned by"), "\(error)")
            }
        }
        let regular = mode_t(S_IFREG) | 0o600
        XCTAssertNoThrow(try SecretKey.checkOwnership(path: "k", mode: regular, owner: 1000, euid: 1000))
        XCTAssertNoThrow(try SecretKey.checkOwnership(path: "k", mode: regular, owner: 0, euid: 1000))
        XCTAssertThrowsError(try SecretKey.checkOwnership(path: "k", mode: regular, owner: 1001, euid: 1000))
        XCTAssertThrowsError(try SecretKey.checkOwnership(path: "k", mode: mode_t(S_IFDIR) | 0o700, owner: 1000, euid: 1000))
        XCTAssertThrowsError(try SecretKey.checkOwnership(path: "k", mode: mode_t(S_IFREG) | 0o604, owner: 1000, euid: 1000))
    }

    func testMockSeedIsStablePerKeyAndDiffersBetweenKeys() throws {
        let a = try SecretKey(bytes: Array(repeating: 7, count: 32))
        XCTAssertEqual(a.mockAuthenticationSeed, try SecretKey(bytes: Array(repeating: 7, count: 32)).mockAuthenticationSeed)
        XCTAssertNotEqual(a.mockAuthenticationSeed, try SecretKey(bytes: Array(repeating: 8, count: 32)).mockAuthenticationSeed)
        XCTAssertEqual(a.mockAuthenticationSeed.count, 32)
    }
}

final class SecretInputTests: XCTestCase {
    /// The whole of a piped input is the secret, minus one final line break.
    func testWholeInputIsTheSecret() {
        XCTAssertEqual(SecretInput.fromWholeInput(Array("pw\n".utf8)), "pw")
        XCTAssertEqual(SecretInput.fromWholeInput(Array("pw".utf8)), "pw")
        XCTAssertEqual(SecretInput.fromWholeInput(Array("pw\r\n".utf8)), "pw")
        XCTAssertEqual(SecretInput.fromWholeInput(Array("first\nsecond\n".utf8)), "first\nsecond", "not only the first line")
        XCTAssertEqual(SecretInput.fromWholeInput(Array("pw\n\n".utf8)), "pw\n", "only one final line break goes")
        XCTAssertNil(SecretInput.fromWholeInput([]))
        XCTAssertNil(SecretInput.fromWholeInput(Array("\n".utf8)))
        XCTAssertNil(SecretInput.fromWholeInput([0xff, 0xfe]))
    }
}
