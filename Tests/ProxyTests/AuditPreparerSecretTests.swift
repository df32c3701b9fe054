import XCTest
import Audit
import Policy
@testable import Proxy

/// Secrets through the writer thread's preparation (AuditPreparer), not the masker alone: what
/// reaches the record is what counts (review of the audit stream, t34_unknown_params.py and
/// t28_secrets2.py).
final class AuditPreparerSecretTests: XCTestCase {
    let all = Set(["READ", "WRITE", "FUNCTION", "ROLE", "DDL", "MISC", "MISC_SET"])

    func prepared(_ text: String, textKnown: Bool = true, tag: String? = nil,
                  parameters: AuditParameters = .notLogged) -> [AuditStatement] {
        var statement = AuditStatement(statementID: 1, substatementID: 1, auditClass: "MISC", command: "???",
                                       text: nil, parameters: parameters)
        statement.preparation = AuditPreparation(fullText: text, index: 1, textMode: .full, completedCommand: tag,
                                                 classes: all, textKnown: textKnown)
        return AuditPreparer().prepare(AuditEvent(kind: .statement, timeMicroseconds: 0, statement: statement))
            .compactMap(\.statement)
    }

    /// `PREPARE ps(text, text) AS SELECT set_config($1, $2, false)` by SQL, then a protocol
    /// Bind of `ps` with ('app.password', 'S3cret'): the record's text is the placeholder, which
    /// never names set_config, so every value is redacted (fail closed); NULL stays NULL.
    func testParametersOfAnUnknownStatementAreRedacted() {
        let records = prepared("<unknown prepared statement \"ps\">", textKnown: false, tag: "SELECT 1",
                               parameters: .values(["app.password", "S3cret-unknown", nil]))
        XCTAssertEqual(records.count, 1)
        XCTAssertEqual(records.first?.parameters, .values(["<redacted>", "<redacted>", nil]))
        XCTAssertFalse(records.first?.pgAuditLine.contains("S3cret") ?? true)
    }
}

extension AuditPreparerSecretTests {
    /// Bare-word and numeric values of secret settings have no quote: the writer's fast path
    /// skipped the masker for them, and they were written as sent (t28_secrets2.py).
    func testBareSecretValuesAreMaskedThroughThePreparer() {
        let cases = [
            ("SET app.password = S3cret_bare", "SET app.password = '<redacted>'"),
            ("SET app.password TO S3cretC_bare_to", "SET app.password TO '<redacted>'"),
            ("SET app.db_password = 31337001", "SET app.db_password = '<redacted>'"),
            ("SET SESSION app.password = x", "SET SESSION app.password = '<redacted>'"),
            ("ALTER DATABASE app SET app.token TO bare", "ALTER DATABASE app SET app.token TO '<redacted>'"),
            ("set APP.PassWord = 1.5", "set APP.PassWord = '<redacted>'"),
        ]
        for (sql, expected) in cases {
            XCTAssertEqual(prepared(sql).map(\.text), [expected], sql)
            XCTAssertEqual(AuditPreparer.masked(sql), expected, sql)
        }
    }

    /// The fast path skips only what the masker leaves as is: over a corpus of statements with
    /// and without quotes and secret words, masked() equals the masker's answer.
    func testFastPathNeverSkipsWhatTheMaskerChanges() {
        let corpus = [
            "SELECT abalance FROM pgbench_accounts WHERE aid = 5",
            "UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid = 7",
            "SELECT 1", "BEGIN", "SET work_mem = 1024",
            "SET app.password = S3cret", "SET \"app.password\" = S3cret", "UPDATE t SET secret_col = 42 WHERE id = 1",
            "ALTER ROLE r SET app.api_key TO abc, def", "SET app.PRIVATE_KEY = k", "SET app.credential = 1e3",
            "SET app.password = 'x'", "SELECT set_config('app.token', 'v', false)", "SELECT $$x$$",
        ]
        for sql in corpus {
            XCTAssertEqual(AuditPreparer.masked(sql), SecretMasker.mask(sql), sql)
            if SecretMasker.mask(sql) != sql { XCTAssertTrue(SecretMasker.mayChange(sql), sql) }
        }
        XCTAssertFalse(SecretMasker.mayChange("SELECT abalance FROM pgbench_accounts WHERE aid = 5"), "fast path kept")
    }
}
