import XCTest
@testable import Policy

/// Secrets never reach the audit stream, whatever the statement looks like.
final class SecretMaskerTests: XCTestCase {
    private func assertMasked(_ sql: String, _ expected: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(SecretMasker.mask(sql), expected, file: file, line: line)
    }

    func testRolePasswords() {
        assertMasked("CREATE ROLE a LOGIN PASSWORD 'hunter2'", "CREATE ROLE a LOGIN PASSWORD '<redacted>'")
        assertMasked("alter user \"b c\" with encrypted password 'x''y' valid until '2030-01-01'",
                     "alter user \"b c\" with encrypted password '<redacted>' valid until '2030-01-01'")
        assertMasked("ALTER ROLE a PASSWORD /* c */ E'se\\'cret'", "ALTER ROLE a PASSWORD /* c */ '<redacted>'")
        assertMasked("CREATE ROLE a PASSWORD $$dollar$$", "CREATE ROLE a PASSWORD $$dollar$$".replacingOccurrences(of: "$$dollar$$", with: "'<redacted>'"))
        assertMasked("CREATE ROLE a PASSWORD U&'\\0041bc'", "CREATE ROLE a PASSWORD '<redacted>'")
        assertMasked("ALTER ROLE a PASSWORD NULL", "ALTER ROLE a PASSWORD NULL")
    }

    func testForeignServerAndUserMappingOptions() {
        assertMasked("CREATE USER MAPPING FOR app SERVER s OPTIONS (user 'u', password 'p')",
                     "CREATE USER MAPPING FOR app SERVER s OPTIONS (user 'u', password '<redacted>')")
        assertMasked("ALTER USER MAPPING FOR app SERVER s OPTIONS (SET password 'p2')",
                     "ALTER USER MAPPING FOR app SERVER s OPTIONS (SET password '<redacted>')")
    }

    func testSecretSettings() {
        assertMasked("SET app.api_token = 'abc'", "SET app.api_token = '<redacted>'")
        assertMasked("set local myapp.password to 'abc'", "set local myapp.password to '<redacted>'")
        assertMasked("ALTER ROLE r SET app.secret = 'abc'", "ALTER ROLE r SET app.secret = '<redacted>'")
        assertMasked("SELECT set_config('app.secret_key', 'abc', false)", "SELECT set_config('app.secret_key', '<redacted>', false)")
        assertMasked("SELECT pg_catalog.set_config('app.Password', 'abc', true)",
                     "SELECT pg_catalog.set_config('app.Password', '<redacted>', true)")
        // Ordinary settings stay readable.
        assertMasked("SET search_path = 'app'", "SET search_path = 'app'")
        assertMasked("SELECT set_config('application_name', 'x', false)", "SELECT set_config('application_name', 'x', false)")
    }

    func testConnectionStrings() {
        assertMasked("SELECT dblink_connect('c', 'host=db user=u password = s3cret dbname=x')",
                     "SELECT dblink_connect('c', '<redacted>')")
        assertMasked("SELECT * FROM dblink('postgresql://u:s3cret@db/x', 'select 1') AS t(a int)",
                     "SELECT * FROM dblink('<redacted>', 'select 1') AS t(a int)")
        assertMasked("CREATE SUBSCRIPTION s CONNECTION 'dbname=x PASSWORD=abc' PUBLICATION p",
                     "CREATE SUBSCRIPTION s CONNECTION '<redacted>' PUBLICATION p")
        assertMasked("SELECT 'my password is long'", "SELECT 'my password is long'")
    }

    /// SQL inside a constant — a DO or function body, a statement for dblink_exec — with a
    /// PASSWORD clause: the whole constant goes (found in review: all three reached the stream).
    func testPasswordsInsideBodiesAndStatementStrings() {
        assertMasked("DO $$BEGIN EXECUTE 'ALTER ROLE r PASSWORD ''dopw'''; END$$", "DO '<redacted>'")
        assertMasked("CREATE FUNCTION f() RETURNS void LANGUAGE sql AS $f$ ALTER ROLE r PASSWORD 'fnpw' $f$",
                     "CREATE FUNCTION f() RETURNS void LANGUAGE sql AS '<redacted>'")
        assertMasked("SELECT dblink_exec('dbname=app', 'ALTER ROLE r PASSWORD ''dblpw''')",
                     "SELECT dblink_exec('dbname=app', '<redacted>')")
        assertMasked("DO $$BEGIN EXECUTE 'ALTER ROLE r PASSWORD E''x'''; END$$", "DO '<redacted>'")
        assertMasked("DO $body$BEGIN EXECUTE $q$ALTER ROLE r ENCRYPTED PASSWORD $p$x$p$ $q$; END$body$", "DO '<redacted>'")
        assertMasked("SELECT 'app.password', 'the password'", "SELECT 'app.password', 'the password'")
        // A placeholder is no password; the bodies stay readable.
        assertMasked("DO $$BEGIN EXECUTE format('ALTER ROLE %I PASSWORD %L', 'r', pw); END$$",
                     "DO $$BEGIN EXECUTE format('ALTER ROLE %I PASSWORD %L', 'r', pw); END$$")
        XCTAssertEqual(SecretMasker.maskParameters(["ALTER ROLE r PASSWORD 'p'"], sql: "SELECT $1"), ["<redacted>"])
    }

    func testCommentsAndUnterminatedText() {
        assertMasked("-- PASSWORD 'x'\nSELECT 1", "-- PASSWORD 'x'\nSELECT 1")
        assertMasked("CREATE ROLE a PASSWORD 'unterminated", "<unparsable statement redacted>")
        assertMasked("", "")
    }

    /// Bind values are masked as the text is: a connection string with a password anywhere,
    /// and every value of a statement that calls set_config or dblink or names PASSWORD.
    func testParametersOfSecretBearingStatementsAreRedacted() {
        XCTAssertEqual(SecretMasker.maskParameters(["app.api_token", "s3cr3t", "false"], sql: "SELECT set_config($1, $2, $3)"),
                       ["<redacted>", "<redacted>", "<redacted>"])
        XCTAssertEqual(SecretMasker.maskParameters(["x"], sql: "SELECT pg_catalog.\"set_config\"('a.b', $1, false)"), ["<redacted>"])
        XCTAssertEqual(SecretMasker.maskParameters(["conn", "host=h user=u"], sql: "SELECT dblink_connect($1, $2)"),
                       ["<redacted>", "<redacted>"])
        XCTAssertEqual(SecretMasker.maskParameters(["host=db password=hunter2", "42", nil],
                                                   sql: "SELECT * FROM t WHERE a = $1 AND b = $2 AND c = $3"),
                       ["<redacted>", "42", nil])
        XCTAssertEqual(SecretMasker.maskParameters(["postgresql://u:pw@h/db"], sql: "SELECT $1"), ["<redacted>"])
        XCTAssertEqual(SecretMasker.maskParameters(["1", "abc"], sql: "SELECT * FROM t WHERE id = $1 AND name = $2"), ["1", "abc"])
        XCTAssertEqual(SecretMasker.maskParameters(["1"], sql: "SELECT 'unterminated"), ["<redacted>"])
    }
}
