import XCTest
@testable import Policy

/// The review's masking gaps (t11_secrets.py): each secret appeared in clear in the audit.
final class SecretMaskerGapTests: XCTestCase {
    private func assertHidden(_ sql: String, _ secret: String = "S3cret", file: StaticString = #filePath, line: UInt = #line) {
        let masked = SecretMasker.mask(sql)
        XCTAssertFalse(masked.contains(secret), masked, file: file, line: line)
        XCTAssertTrue(masked.contains("<redacted>"), masked, file: file, line: line)
    }

    func testQuotedAndOtherPasswordOptionNames() {
        assertHidden("CREATE USER MAPPING FOR app SERVER s OPTIONS (user 'x', \"password\" 'S3cret')")
        assertHidden("ALTER SERVER s OPTIONS (SET \"password\" 'S3cret')")
        assertHidden("ALTER USER MAPPING FOR app SERVER s OPTIONS (ADD sslpassword 'S3cret')")
        XCTAssertEqual(SecretMasker.mask("CREATE USER MAPPING FOR app SERVER s OPTIONS (user 'x')"),
                       "CREATE USER MAPPING FOR app SERVER s OPTIONS (user 'x')")
    }

    func testSettingValuesOfEveryForm() {
        assertHidden("SET app.password = S3cret_unquoted_ident")
        assertHidden("SET app.api_token = 123456789", "123456789")
        assertHidden("SET app.secret TO 'a', 'S3cret'")
        XCTAssertEqual(SecretMasker.mask("SET app.secret TO 'a', 'S3cret'"), "SET app.secret TO '<redacted>', '<redacted>'")
        XCTAssertEqual(SecretMasker.mask("SET search_path = app, public"), "SET search_path = app, public")
    }

    func testSetConfigNamesCastOrEscaped() {
        assertHidden("SELECT set_config('app.password'::text, 'S3cret', false)")
        assertHidden("SELECT set_config(E'app.pass\\x77ord', 'S3cret', false)")
        assertHidden("SELECT set_config(E'app.pass\\167ord', 'S3cret'::text, false)")
        XCTAssertEqual(SecretMasker.mask("SELECT set_config('application_name'::text, 'x', false)"),
                       "SELECT set_config('application_name'::text, 'x', false)")
    }

    /// Review 20: mistyped passwords do not parse, and their text is shown; what follows
    /// PASSWORD is masked whatever it is.
    func testMistypedPasswords() {
        assertHidden("ALTER ROLE x1 WITH PASSWORD \"S3cret\"")
        assertHidden("ALTER ROLE x1 PASSWORD S3cret")
        assertHidden("ALTER ROLE x1 PASSWORD ’S3cret’")
        assertHidden("ALTER ROLE x1 PASSWORD ('S3cret')")
        assertHidden("ALTER ROLE x1 ENCRYPTED 'S3cret'")
        assertHidden("CREATE USER x1 IDENTIFIED BY 'S3cret'")
        assertHidden("CREATE USER MAPPING FOR x SERVER s OPTIONS (password \"S3cret\")")
        assertHidden("CREATE USER MAPPING FOR x SERVER s OPTIONS (password: 'S3cret')")
        assertHidden("SELECT 1; ALTER ROLE x1 PASSWORD \"S3cret\"; SELECT 2")
        XCTAssertEqual(SecretMasker.mask("ALTER ROLE x1 ENCRYPTED PASSWORD 'S3cret' VALID UNTIL 'infinity'"),
                       "ALTER ROLE x1 ENCRYPTED PASSWORD '<redacted>' VALID UNTIL 'infinity'")
        XCTAssertEqual(SecretMasker.mask("SELECT password FROM users WHERE id = 1"), "SELECT password FROM users WHERE id = 1")
        XCTAssertEqual(SecretMasker.mask("SELECT t.id FROM api_tokens t WHERE t.secret IS NULL"),
                       "SELECT t.id FROM api_tokens t WHERE t.secret IS NULL")
        assertHidden("SELECT 1 FROM x WHERE app_secret: 'S3cret'")
    }

    /// Review 20: escaped connection-string keys.
    func testEscapedConnectionStringKeys() {
        assertHidden("SELECT dblink_connect(E'host=h pass\\x77ord=S3cret')")
        assertHidden("SELECT dblink_connect(E'host=h p\\u0061ssword=S3cret')")
        assertHidden("SELECT dblink_connect(E'host=h p\\141ssword=S3cret')")
        assertHidden("SELECT dblink_connect(U&'host=h pass\\0077ord=S3cret')")
        assertHidden("SELECT dblink_connect(U&'host=h pass!0077ord=S3cret' UESCAPE '!')")
        assertHidden("SELECT dblink_connect(U&'password\\003DS3cret')")
        XCTAssertEqual(SecretMasker.mask("SELECT E'a\\tb', U&'data'"), "SELECT E'a\\tb', U&'data'")
    }

    func testMoreSecretSettingNames() {
        for name in ["app.pwd", "app.jwt", "app.bearer", "app.encryption_key", "app.signing_key", "app.aws_access_key"] {
            assertHidden("SET \(name) = 'S3cret'")
        }
    }

    func testPercentEncodedURIKeys() {
        assertHidden("SELECT dblink_connect('postgresql://h/db?%70assword=S3cret')")
        assertHidden("SELECT dblink_connect('postgresql://h/db?user=u&pass%77ord=S3cret')")
    }
}
