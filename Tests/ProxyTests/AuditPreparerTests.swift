import XCTest
import Audit
import Policy
@testable import Proxy

/// The writer thread's preparation: class filter per session, pgAudit's log_relation and
/// log_statement_once, parameters left as the session rendered them.
final class AuditPreparerTests: XCTestCase {
    let all = Set(["READ", "WRITE", "FUNCTION", "ROLE", "DDL", "MISC", "MISC_SET"])

    func event(_ text: String, index: Int = 1, classes: Set<String>? = nil, logRelation: Bool = false, once: Bool = false,
               parameters: AuditParameters = .notLogged) -> AuditEvent {
        var statement = AuditStatement(statementID: 1, substatementID: UInt64(index), auditClass: "MISC", command: "???",
                                       text: nil, parameters: parameters)
        statement.preparation = AuditPreparation(fullText: text, index: index, textMode: .full, completedCommand: nil,
                                                 classes: classes ?? all, logRelation: logRelation, logStatementOnce: once)
        return AuditEvent(kind: .statement, timeMicroseconds: 0, statement: statement)
    }

    func testOneRecordPerRelationWithLogRelation() throws {
        let preparer = AuditPreparer()
        let sql = "SELECT * FROM a JOIN s.b USING (id) WHERE id IN (SELECT id FROM a)"
        let records = preparer.prepare(event(sql, logRelation: true)).compactMap(\.statement)
        XCTAssertEqual(records.map(\.objectName), ["a", "s.b"])
        XCTAssertEqual(records.map(\.objectType), ["TABLE", "TABLE"])
        XCTAssertTrue(records.allSatisfy { $0.auditClass == "READ" && $0.command == "SELECT" && $0.text == sql && $0.textLogged })
        XCTAssertEqual(records.map(\.pgAuditLine), [
            "AUDIT: SESSION,1,1,READ,SELECT,TABLE,a,\(sql),<not logged>",
            "AUDIT: SESSION,1,1,READ,SELECT,TABLE,s.b,\(sql),<not logged>",
        ])
        // Without log_relation: one record naming both.
        let single = preparer.prepare(event(sql)).compactMap(\.statement)
        XCTAssertEqual(single.map(\.objectName), ["a,s.b"])
    }

    func testLogStatementOnceLeavesTheTextInTheFirstRecordOnly() throws {
        let preparer = AuditPreparer()
        let sql = "INSERT INTO a SELECT * FROM b"
        let records = preparer.prepare(event(sql, logRelation: true, once: true, parameters: .none)).compactMap(\.statement)
        XCTAssertEqual(records.map(\.pgAuditLine), [
            "AUDIT: SESSION,1,1,WRITE,INSERT,TABLE,a,INSERT INTO a SELECT * FROM b,<none>",
            "AUDIT: SESSION,1,1,WRITE,INSERT,TABLE,b,<previously logged>,<previously logged>",
        ])
    }

    func testLogRelationDoesNotSplitDDLOrMisc() {
        let preparer = AuditPreparer()
        XCTAssertEqual(preparer.prepare(event("TRUNCATE a, b", logRelation: true)).count, 1)
        XCTAssertEqual(preparer.prepare(event("CREATE VIEW v AS SELECT * FROM a, b", logRelation: true)).count, 1)
    }

    /// A Query string of one statement is not split again; its text is cut exactly as a split
    /// would (blanks and the final semicolon off), and a multi-statement string still is split.
    func testStatementTextWithAndWithoutSplitting() {
        let preparer = AuditPreparer()
        let cases: [(String, Int, String)] = [
            ("SELECT 1", 1, "SELECT 1"),
            ("  SELECT 1 ;  \n", 1, "SELECT 1"),
            ("/* c */ SELECT 1;", 1, "/* c */ SELECT 1"),
            ("SELECT 1; SELECT 'a;b';", 2, "SELECT 'a;b'"),
            ("SELECT 1; SELECT 'a;b';", 1, "SELECT 1"),
            ("SELEC 1", 1, "SELEC 1"),
        ]
        for (sql, index, expected) in cases {
            let records = preparer.prepare(event(sql, index: index)).compactMap(\.statement)
            XCTAssertEqual(records.map(\.text), [expected], sql)
            XCTAssertEqual(AuditPreparer.statementText(sql, offsets: StatementSplitter.statementOffsets(sql), index: index), expected, sql)
        }
    }

    /// A statement the split does not reach gets a short placeholder, never the whole string:
    /// found in review, each of 70,000 statements beyond the 1 MB kept of a 3 MB Query carried
    /// (and had scanned for secrets) the whole kept megabyte.
    func testStatementsBeyondTheSplitDoNotRepeatTheWholeString() {
        let sql = "SELECT 1; SELECT 2"
        let offsets = StatementSplitter.statementOffsets(sql)
        XCTAssertEqual(AuditPreparer.statementText(sql, offsets: offsets, index: 2), "SELECT 2")
        XCTAssertEqual(AuditPreparer.statementText(sql, offsets: offsets, index: 3), AuditPreparer.notKeptText)
        XCTAssertEqual(AuditPreparer.statementText("SELEC 1; SELECT 2", offsets: nil, index: 1), "SELEC 1; SELECT 2")
        XCTAssertEqual(AuditPreparer.statementText("SELEC 1; SELECT 2", offsets: nil, index: 2), AuditPreparer.unsplitText)
    }

    /// Command and row count come from the CommandComplete tag on the writer thread, as the
    /// lifecycle's record reads them.
    func testCommandAndRowsFromTheTag() {
        XCTAssertTrue(AuditPreparer.commandAndRows("SELECT 3") == ("SELECT", 3))
        XCTAssertTrue(AuditPreparer.commandAndRows("INSERT 0 5") == ("INSERT", 5))
        XCTAssertTrue(AuditPreparer.commandAndRows("CREATE TABLE") == ("CREATE TABLE", nil))
        XCTAssertTrue(AuditPreparer.commandAndRows("") == ("", nil))
        // Unparsable text: the class from the completed command, rows from its tag.
        var statement = AuditStatement(statementID: 1, substatementID: 1, auditClass: "MISC", command: "???", text: nil)
        statement.preparation = AuditPreparation(fullText: "SELEC 1", index: 1, textMode: .full, completedCommand: "UPDATE 7", classes: all)
        let records = AuditPreparer().prepare(AuditEvent(kind: .statement, timeMicroseconds: 0, statement: statement)).compactMap(\.statement)
        XCTAssertEqual(records.map(\.command), ["UPDATE"])
        XCTAssertEqual(records.map(\.auditClass), ["WRITE"])
        XCTAssertEqual(records.map(\.rows), [7])
    }

    func testSessionClassesFilter() {
        let preparer = AuditPreparer()
        XCTAssertEqual(preparer.prepare(event("SELECT 1", classes: ["WRITE", "DDL"])).count, 0)
        XCTAssertEqual(preparer.prepare(event("DELETE FROM a", classes: ["WRITE", "DDL"])).count, 1)
        XCTAssertEqual(preparer.prepare(event("SET work_mem = '1MB'", classes: ["MISC"])).count, 0)
        XCTAssertEqual(preparer.prepare(event("SET work_mem = '1MB'", classes: ["MISC_SET"])).count, 1)
    }

    func testParametersAreWrittenAsPgAuditDoes() {
        var statement = AuditStatement(statementID: 3, substatementID: 1, auditClass: "READ", command: "SELECT",
                                       text: "SELECT $1, $2, $3", parameters: .values(["42", nil, "a,b"]))
        XCTAssertEqual(statement.pgAuditLine, "AUDIT: SESSION,3,1,READ,SELECT,,,\"SELECT $1, $2, $3\",\"42,,\"\"a,b\"\"\"")
        statement.parameters = .none
        XCTAssertEqual(statement.pgAuditLine, "AUDIT: SESSION,3,1,READ,SELECT,,,\"SELECT $1, $2, $3\",<none>")
    }

    /// One statement naming 20,000 relations gives at most 101 records, not 20,000.
    func testRelationRecordsAreBounded() {
        let preparer = AuditPreparer()
        let sql = "SELECT 1 FROM " + (0..<20_000).map { "t\($0)" }.joined(separator: ", ") + " WHERE false"
        let records = preparer.prepare(event(sql, logRelation: true, once: true)).compactMap(\.statement)
        XCTAssertEqual(records.count, AuditPreparer.maxRelationRecords + 1)
        XCTAssertEqual(records.last?.objectName, "(19900 more relations)")
        XCTAssertEqual(records.filter(\.textLogged).count, 1)
    }

    /// An Execute of a statement the session does not know the text of (SQL PREPARE, or a
    /// forgotten name): written as it says, classed by its CommandComplete tag, and without a
    /// tag counted as WRITE, so `audit_classes = write` keeps what may have been a write.
    func testUnknownStatementTextIsClassedByItsTag() {
        let preparer = AuditPreparer()
        func unknown(tag: String?, classes: Set<String>) -> [AuditStatement] {
            var statement = AuditStatement(statementID: 3, substatementID: 1, auditClass: "MISC", command: "???", text: nil)
            statement.preparation = AuditPreparation(fullText: "<unknown prepared statement \"s1\">", index: 1, textMode: .full,
                                                     completedCommand: tag, classes: classes, textKnown: false)
            return preparer.prepare(AuditEvent(kind: .statement, timeMicroseconds: 0, statement: statement)).compactMap(\.statement)
        }
        XCTAssertEqual(unknown(tag: "INSERT 0 1", classes: ["WRITE"]).map(\.pgAuditLine),
                       ["AUDIT: SESSION,3,1,WRITE,INSERT,,,\"<unknown prepared statement \"\"s1\"\">\",<not logged>"])
        XCTAssertEqual(unknown(tag: "SELECT 1", classes: ["WRITE"]), [])
        XCTAssertEqual(unknown(tag: "SELECT 1", classes: ["READ"]).map(\.auditClass), ["READ"])
        XCTAssertEqual(unknown(tag: nil, classes: ["WRITE"]).map(\.command), ["???"], "no tag: may have written")
    }

    /// The session ended inside a Query string: the statement running and each later one are
    /// recorded, each with its own class (a DDL after a sleep is not hidden).
    func testRestOfAStringTheSessionEndedInIsRecorded() {
        let preparer = AuditPreparer()
        let sql = "SELECT 1; SELECT pg_sleep(0.5); CREATE TABLE hidden_ddl(x int); INSERT INTO t VALUES (1)"
        func ended(classes: Set<String>) -> [AuditStatement] {
            var statement = AuditStatement(statementID: 1, substatementID: 2, auditClass: "MISC", command: "???", text: nil,
                                           outcome: .disconnected)
            statement.preparation = AuditPreparation(fullText: sql, index: 2, textMode: .full, completedCommand: nil,
                                                     classes: classes, throughEndOfString: true)
            return preparer.prepare(AuditEvent(kind: .statement, timeMicroseconds: 0, statement: statement)).compactMap(\.statement)
        }
        let all = ended(classes: all)
        XCTAssertEqual(all.map(\.substatementID), [2, 3, 4])
        XCTAssertEqual(all.map(\.text), ["SELECT pg_sleep(0.5)", "CREATE TABLE hidden_ddl(x int)", "INSERT INTO t VALUES (1)"])
        XCTAssertEqual(all.map(\.auditClass), ["READ", "DDL", "WRITE"])
        XCTAssertTrue(all.allSatisfy { $0.outcome == .disconnected })
        XCTAssertEqual(ended(classes: ["WRITE"]).map(\.text), ["INSERT INTO t VALUES (1)"])
        XCTAssertEqual(ended(classes: ["DDL"]).map(\.text), ["CREATE TABLE hidden_ddl(x int)"])
    }

    /// Text `normalized`: constants become `$n`, and where pg_query_normalize leaves them (a
    /// utility statement, a syntax error) they are redacted (found in review: those were kept).
    func testNormalizedTextKeepsNoConstants() {
        let preparer = AuditPreparer()
        func text(_ sql: String) -> String? {
            var statement = AuditStatement(statementID: 1, substatementID: 1, auditClass: "MISC", command: "???", text: nil, outcome: .ok)
            statement.preparation = AuditPreparation(fullText: sql, index: 1, textMode: .normalized, completedCommand: nil, classes: all)
            return preparer.prepare(AuditEvent(kind: .statement, timeMicroseconds: 0, statement: statement)).first?.statement?.text
        }
        XCTAssertEqual(text("SELECT * FROM t WHERE a = 42 AND b = 'x'"), "SELECT * FROM t WHERE a = $1 AND b = $2")
        for sql in ["PREPARE pq AS SELECT 'CUSTOMER_DATA_8'", "COMMENT ON TABLE t IS 'SSN 123-45-6789'",
                    "CREATE TABLE c (a int CHECK (a <> 424242))", "EXECUTE pq('CUSTOMER_DATA_11')",
                    "SELECT * FROM t1 WHERE a = 987654321 AND name = 'John Doe SSN 123-45-6789' ORDER"] {
            let logged = text(sql) ?? ""
            for secret in ["CUSTOMER_DATA", "123-45-6789", "424242", "987654321"] {
                XCTAssertFalse(logged.contains(secret), "\(sql) -> \(logged)")
            }
        }
        XCTAssertEqual(text("SET app.password = S3cret"), "SET app.password = $1")
    }

    /// With text `none` or `normalized` the error message does not repeat the literals the
    /// text leaves out; with `full` it does, unless the masker took a secret out of the text.
    func testErrorMessageValuesFollowTheTextMode() {
        let preparer = AuditPreparer()
        let message = "invalid input syntax for type integer: \"customer-ssn-123-45-6789\""
        func prepared(_ sql: String, _ mode: AuditPreparation.TextMode, _ message: String) -> AuditOutcome? {
            var statement = AuditStatement(statementID: 1, substatementID: 1, auditClass: "MISC", command: "???", text: nil,
                                           outcome: .failed(sqlState: "22P02", message: message))
            statement.preparation = AuditPreparation(fullText: sql, index: 1, textMode: mode, completedCommand: nil, classes: all)
            return preparer.prepare(AuditEvent(kind: .statement, timeMicroseconds: 0, statement: statement)).first?.statement?.outcome
        }
        let sql = "SELECT 'customer-ssn-123-45-6789'::int"
        XCTAssertEqual(prepared(sql, .full, message), .failed(sqlState: "22P02", message: message))
        for mode in [AuditPreparation.TextMode.none, .normalized] {
            XCTAssertEqual(prepared(sql, mode, message),
                           .failed(sqlState: "22P02", message: "invalid input syntax for type integer: \"?\""), "\(mode)")
        }
        XCTAssertEqual(prepared("SELECT 99999999999::int4", .none, "value \"99999999999\" is out of range for type integer"),
                       .failed(sqlState: "22P02", message: "value \"?\" is out of range for type integer"))
        XCTAssertEqual(AuditPreparer.messageWithoutValues("bigint out of range: 12.5 at line 3 of int4 'x'"),
                       "bigint out of range: ? at line ? of int4 '?'")
        // PostgreSQL does not escape quotes inside the values it quotes (found in review): from
        // the first quote to the last, all of it goes.
        XCTAssertEqual(AuditPreparer.messageWithoutValues(#"syntax error at or near ""Tr0ub4dor&3"""#), #"syntax error at or near "?""#)
        XCTAssertEqual(AuditPreparer.messageWithoutValues(#"invalid input syntax for type integer: "name: "Jane Roe", ssn: "123-45-6789"""#),
                       #"invalid input syntax for type integer: "?""#)
        XCTAssertEqual(AuditPreparer.messageWithoutValues(#"a "x" b 'y"z' c 42"#), #"a "?' c ?"#)
        XCTAssertEqual(AuditPreparer.messageWithoutValues("column \"a\" of relation \"t\" does not exist"), "column \"?\" does not exist")
        // A masked secret in full mode: the error would repeat it.
        let secret = "SET my.password = 'hunter2-secret'"
        XCTAssertEqual(prepared(secret, .full, "invalid value for parameter \"my.password\": \"hunter2-secret\""),
                       .failed(sqlState: "22P02", message: "invalid value for parameter \"?\""))
    }
}
