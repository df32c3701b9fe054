import XCTest
@testable import Auth

final class CryptoTests: XCTestCase {
    func testSHA256KnownAnswers() {
        XCTAssertEqual(Crypto.hex(Crypto.sha256(bytes(""))),
                       "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        XCTAssertEqual(Crypto.hex(Crypto.sha256(bytes("abc"))),
                       "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        // Any Collection of bytes is accepted, e.g. a slice.
        XCTAssertEqual(Crypto.sha256(bytes("xabcx").dropFirst().dropLast()), Crypto.sha256(bytes("abc")))
    }

    func testHMACSHA256RFC4231Vectors() {
        XCTAssertEqual(Crypto.hex(Crypto.hmacSHA256(key: [UInt8](repeating: 0x0b, count: 20), data: bytes("Hi There"))),
                       "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7")
        XCTAssertEqual(Crypto.hex(Crypto.hmacSHA256(key: bytes("Jefe"), data: bytes("what do ya want for nothing?"))),
                       "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
        // Test case 6: a key longer than the block size is hashed first.
        XCTAssertEqual(Crypto.hex(Crypto.hmacSHA256(key: [UInt8](repeating: 0xaa, count: 131),
                                                    data: bytes("Test Using Larger Than Block-Size Key - Hash Key First"))),
                       "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54")
    }

    func testHMACWithEmptyKeyAndData() {
        XCTAssertEqual(Crypto.hex(Crypto.hmacSHA256(key: [], data: [])),
                       "b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad")
    }

    func testPBKDF2SHA256KnownAnswers() {
        XCTAssertEqual(Crypto.hex(Crypto.pbkdf2SHA256(password: bytes("password"), salt: bytes("salt"), iterations: 1)),
                       "120fb6cffcf8b32c43e7225256c4f837a86548c92ccc35480805987cb70be17b")
        XCTAssertEqual(Crypto.hex(Crypto.pbkdf2SHA256(password: bytes("password"), salt: bytes("salt"), iterations: 2)),
                       "ae4d0c95af6b46d32d0adff928f06dd02a303f8ef3c251dfd6e2d85a95474c43")
        XCTAssertEqual(Crypto.hex(Crypto.pbkdf2SHA256(password: bytes("password"), salt: bytes("salt"), iterations: 4096)),
                       "c5e478d59288c841aa530db6845c4c8d962893a001ce4e11a4963873aa98134a")
    }

    /// Across the steps between looks at `keepGoing` (4096), with an empty password or salt
    /// (answers from Python's hashlib.pbkdf2_hmac).
    func testPBKDF2SHA256InStepsKnownAnswers() {
        let cases: [(String, String, Int, String)] = [
            ("password", "salt", 4097, "83fe42bb05db211c01153fa7267aafb0bd64f75064eb1b8490ffddd841b75c4c"),
            ("", "salt", 5000, "8d0eaa12603bc63e928b2aa616608fb6f6752c9521ca91f4b985e0253512adba"),
            ("pw", "", 4096, "4849d146dc4625a0488ec63f91bc8850d8a754882d19910cb629ab0f579ed63a"),
            ("pencil", "QSXCR+Q6sek8bf92", 8193, "692dcaa985159aa62a0f8283fdb892ec125d6f8f086c534a08262f7d14518840"),
        ]
        for (password, salt, iterations, expected) in cases {
            var looks = 0
            let out = Crypto.pbkdf2SHA256(password: bytes(password), salt: bytes(salt), iterations: iterations) {
                looks += 1
                return true
            }
            XCTAssertEqual(out.map(Crypto.hex), expected, "\(password) \(salt) \(iterations)")
            XCTAssertEqual(looks, (iterations - 1 + Crypto.pbkdf2Step - 1) / Crypto.pbkdf2Step)
        }
    }

    /// Told to stop, the derivation ends at its next look, with no result.
    func testPBKDF2SHA256Stops() {
        var looks = 0
        let out = Crypto.pbkdf2SHA256(password: bytes("pw"), salt: bytes("salt"), iterations: Int(Int32.max)) {
            looks += 1
            return looks < 3
        }
        XCTAssertNil(out)
        XCTAssertEqual(looks, 3)
    }

    func testMD5Hex() {
        XCTAssertEqual(Crypto.md5Hex(bytes("")), "d41d8cd98f00b204e9800998ecf8427e")
        XCTAssertEqual(Crypto.md5Hex(bytes("passworduser")), "4d45974e13472b5a0be3533de4666414")
    }

    func testConstantTimeEquals() {
        XCTAssertTrue(Crypto.constantTimeEquals([], []))
        XCTAssertTrue(Crypto.constantTimeEquals([1, 2, 3], [1, 2, 3]))
        XCTAssertFalse(Crypto.constantTimeEquals([1, 2, 3], [1, 2, 4]))
        XCTAssertFalse(Crypto.constantTimeEquals([1, 2, 3], [1, 2]))
        XCTAssertFalse(Crypto.constantTimeEquals([], [0]))
    }

    func testRandomBytes() {
        XCTAssertEqual(Crypto.randomBytes(0), [])
        let first = Crypto.randomBytes(32)
        let second = Crypto.randomBytes(32)
        XCTAssertEqual(first.count, 32)
        XCTAssertNotEqual(first, second)
    }
}

final class Base64Tests: XCTestCase {
    func testRFC4648Vectors() {
        let vectors = ["": "", "f": "Zg==", "fo": "Zm8=", "foo": "Zm9v", "foob": "Zm9vYg==",
                       "fooba": "Zm9vYmE=", "foobar": "Zm9vYmFy"]
        for (plain, encoded) in vectors {
            XCTAssertEqual(Base64.encode(bytes(plain)), encoded)
            XCTAssertEqual(Base64.decode(encoded), bytes(plain), encoded)
        }
    }

    func testAllByteValuesRoundTrip() {
        let all = (0...255).map { UInt8($0) }
        for length in 0...all.count where length % 37 == 0 || length < 5 {
            let slice = Array(all.prefix(length))
            XCTAssertEqual(Base64.decode(Base64.encode(slice)), slice)
        }
        XCTAssertEqual(Base64.encode([0xfb, 0xff]), "+/8=")
    }

    func testRejectsInvalidInput() {
        for invalid in ["Zg=", "Zg", "Zm9v\n", "Zm9v ", "Zh==", "Zm9=", "Z===", "====", "=Zm9", "Zm=v",
                        "Zg==Zm9v", "Zm9v-_==", "Zm9*"] {
            XCTAssertNil(Base64.decode(invalid), invalid)
        }
    }
}

final class MD5PasswordTests: XCTestCase {
    func testHashMatchesPostgreSQL() {
        // PostgreSQL: SELECT 'md5' || md5('password' || 'user')
        XCTAssertEqual(MD5Password.hash(user: "user", password: "password"), "md54d45974e13472b5a0be3533de4666414")
    }

    func testResponseToSalt() {
        let stored = MD5Password.hash(user: "user", password: "password")
        // md5(hex-of-stored + salt bytes 01 02 03 04), computed independently with Python hashlib.
        XCTAssertEqual(MD5Password.response(storedHash: stored, salt: [1, 2, 3, 4]), "md5a3576f1ae039b8996bc4fc2720f9c71a")
    }

    func testVerify() {
        let stored = MD5Password.hash(user: "alice", password: "secret")
        let salt: [UInt8] = [9, 8, 7, 6]
        let good = MD5Password.response(storedHash: MD5Password.hash(user: "alice", password: "secret"), salt: salt)
        let wrongPassword = MD5Password.response(storedHash: MD5Password.hash(user: "alice", password: "secreT"), salt: salt)
        let wrongSalt = MD5Password.response(storedHash: stored, salt: [9, 8, 7, 7])
        XCTAssertTrue(MD5Password.verify(clientResponse: good, storedHash: stored, salt: salt))
        XCTAssertFalse(MD5Password.verify(clientResponse: wrongPassword, storedHash: stored, salt: salt))
        XCTAssertFalse(MD5Password.verify(clientResponse: wrongSalt, storedHash: stored, salt: salt))
        XCTAssertFalse(MD5Password.verify(clientResponse: good, storedHash: "plaintext", salt: salt))
    }
}
