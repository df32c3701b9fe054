import XCTest
@testable import Session

/// Message sequences as PostgreSQL 15 sends them (captured with a protocol trace of psql and
/// pgbench -M extended), fed to the lifecycle with made-up timestamps.
final class StatementLifecycleTests: XCTestCase {
    typealias Record = StatementLifecycle.Record
    let I = UInt8(ascii: "I"), T = UInt8(ascii: "T"), E = UInt8(ascii: "E")

    func testSimpleQuery() {
        var life = StatementLifecycle()
        life.queryReceived("SELECT 1", at: 100)
        life.commandCompleteReceived(tag: "SELECT 1", at: 150)
        let records = life.readyForQueryReceived(status: I, at: 160)
        XCTAssertEqual(records, [Record(text: "SELECT 1", statementID: 1, substatementID: 1, source: .simpleQuery, tag: "SELECT 1",
                                        outcome: .ok, startedAt: 100, finishedAt: 150, transactionStatus: I)])
        XCTAssertEqual(records[0].rows, 1)
        XCTAssertEqual(records[0].command, "SELECT")
        XCTAssertEqual(life.statementCount, 1)
    }

    func testMultiStatementQueryWithErrorInTheMiddle() {
        var life = StatementLifecycle()
        let text = "BEGIN; INSERT INTO t VALUES (1); SELECT 1/0; SELECT 2"
        life.queryReceived(text, at: 0)
        life.commandCompleteReceived(tag: "BEGIN", at: 10)
        life.commandCompleteReceived(tag: "INSERT 0 1", at: 20)
        life.errorReceived(sqlState: "22012", message: "division by zero", refused: false, at: 30)
        let records = life.readyForQueryReceived(status: E, at: 40)
        XCTAssertEqual(records.map(\.substatementID), [1, 2, 3])
        XCTAssertEqual(Set(records.map(\.statementID)), [1])
        XCTAssertEqual(records.map(\.command), ["BEGIN", "INSERT", nil])
        XCTAssertEqual(records[1].rows, 1)
        XCTAssertEqual(records[2].outcome, .failed(sqlState: "22012", message: "division by zero"))
        XCTAssertEqual(records[2].startedAt, 20)
        XCTAssertTrue(records.allSatisfy { $0.transactionStatus == E && $0.text == text })
        // The next query gets the next statement id.
        life.queryReceived("ROLLBACK", at: 50)
        life.commandCompleteReceived(tag: "ROLLBACK", at: 60)
        XCTAssertEqual(life.readyForQueryReceived(status: I, at: 61).map(\.statementID), [2])
    }

    func testRefusedStatementOfAMultiStatementQuery() {
        var life = StatementLifecycle()
        life.queryReceived("SELECT 1; DELETE FROM t", at: 0)
        life.commandCompleteReceived(tag: "SELECT 1", at: 1)
        life.errorReceived(sqlState: "25006", message: "cannot execute DELETE in a read-only transaction", refused: true, at: 2)
        let records = life.readyForQueryReceived(status: I, at: 3)
        XCTAssertEqual(records.map(\.outcome), [.ok, .refused(sqlState: "25006", message: "cannot execute DELETE in a read-only transaction")])
        XCTAssertEqual(records.map(\.substatementID), [1, 2])
    }

    func testExtendedPipelineWithNamedAndUnnamedStatementsAndAnErrorMidPipeline() {
        var life = StatementLifecycle()
        // Batch 1: a named statement prepared once, executed twice; an unnamed one.
        life.parseReceived(name: "s1", text: "SELECT $1::int")
        life.bindReceived(portal: "", statement: "s1")
        life.executeReceived(portal: "", at: 10)
        life.bindReceived(portal: "", statement: "s1")
        life.executeReceived(portal: "", at: 11)
        life.parseReceived(name: "", text: "UPDATE t SET a = $1")
        life.bindReceived(portal: "", statement: "")
        life.executeReceived(portal: "", at: 12)
        life.syncReceived()
        // Batch 2, pipelined before batch 1's replies: an error in the middle, then more.
        life.parseReceived(name: "", text: "SELECT 1/$1")
        life.bindReceived(portal: "", statement: "")
        life.executeReceived(portal: "", at: 13)
        life.bindReceived(portal: "", statement: "s1")
        life.executeReceived(portal: "", at: 14)
        life.syncReceived()
        // Batch 3.
        life.bindReceived(portal: "p", statement: "s1")
        life.executeReceived(portal: "p", at: 15)
        life.syncReceived()

        life.commandCompleteReceived(tag: "SELECT 1", at: 20)
        life.commandCompleteReceived(tag: "SELECT 1", at: 21)
        life.commandCompleteReceived(tag: "UPDATE 3", at: 22)
        let first = life.readyForQueryReceived(status: I, at: 23)
        XCTAssertEqual(first.map(\.text), ["SELECT $1::int", "SELECT $1::int", "UPDATE t SET a = $1"])
        XCTAssertEqual(first.map(\.statementID), [1, 2, 3])
        XCTAssertEqual(first.map(\.rows), [1, 1, 3])
        XCTAssertEqual(first.map(\.startedAt), [10, 11, 12])

        life.errorReceived(sqlState: "22012", message: "division by zero", refused: false, at: 30)
        let second = life.readyForQueryReceived(status: I, at: 31)
        XCTAssertEqual(second.count, 1, "the Execute after the error was discarded by the server")
        XCTAssertEqual(second.first?.text, "SELECT 1/$1")
        XCTAssertEqual(second.first?.outcome, .failed(sqlState: "22012", message: "division by zero"))

        life.commandCompleteReceived(tag: "SELECT 1", at: 40)
        let third = life.readyForQueryReceived(status: I, at: 41)
        XCTAssertEqual(third.map(\.text), ["SELECT $1::int"])
        XCTAssertEqual(third.map(\.statementID), [5])
    }

    func testParseErrorBeforeSyncArrives() {
        var life = StatementLifecycle()
        life.parseReceived(name: "", text: "SELEC 1")
        life.errorReceived(sqlState: "42601", message: "syntax error at or near \"SELEC\"", refused: false, at: 5)
        // Sent after the error but before Sync: the server discards these.
        life.bindReceived(portal: "", statement: "")
        life.executeReceived(portal: "", at: 6)
        life.syncReceived()
        let records = life.readyForQueryReceived(status: I, at: 7)
        XCTAssertEqual(records.map(\.text), ["SELEC 1"])
        XCTAssertEqual(records.first?.outcome, .failed(sqlState: "42601", message: "syntax error at or near \"SELEC\""))
        // And the stream is in step afterwards.
        life.queryReceived("SELECT 2", at: 8)
        life.commandCompleteReceived(tag: "SELECT 1", at: 9)
        XCTAssertEqual(life.readyForQueryReceived(status: I, at: 10).map(\.text), ["SELECT 2"])
    }

    func testCopyFromAndTo() {
        var life = StatementLifecycle()
        life.queryReceived("COPY t FROM STDIN", at: 0)
        // CopyInResponse, the client's CopyData and CopyDone are not the lifecycle's business.
        // The client pipelines the next query; its replies come after the first ReadyForQuery.
        life.queryReceived("COPY t TO STDOUT", at: 6)
        life.commandCompleteReceived(tag: "COPY 1000", at: 5)
        let first = life.readyForQueryReceived(status: I, at: 8)
        XCTAssertEqual(first.map(\.rows), [1000])
        XCTAssertEqual(first.map(\.text), ["COPY t FROM STDIN"])
        life.commandCompleteReceived(tag: "COPY 1000", at: 7)
        let second = life.readyForQueryReceived(status: I, at: 9)
        XCTAssertEqual(second.map(\.text), ["COPY t TO STDOUT"])
    }

    func testFunctionCall() {
        var life = StatementLifecycle()
        life.functionCallReceived(oid: 764, at: 0)
        XCTAssertEqual(life.readyForQueryReceived(status: T, at: 3),
                       [Record(text: "", statementID: 1, substatementID: 1, source: .functionCall(oid: 764), tag: nil, outcome: .ok,
                               startedAt: 0, finishedAt: 3, transactionStatus: T)])
        life.functionCallReceived(oid: 765, at: 4)
        life.errorReceived(sqlState: "42883", message: "function does not exist", refused: false, at: 5)
        let failed = life.readyForQueryReceived(status: I, at: 6)
        XCTAssertEqual(failed.map(\.outcome), [.failed(sqlState: "42883", message: "function does not exist")])
        XCTAssertEqual(life.readyForQueryReceived(status: I, at: 7), [])
    }

    func testEmptyQueries() {
        var life = StatementLifecycle()
        life.queryReceived("", at: 0)
        life.emptyQueryReceived(at: 1)
        XCTAssertEqual(life.readyForQueryReceived(status: I, at: 2), [])
        life.queryReceived(";SELECT 1", at: 3)
        life.commandCompleteReceived(tag: "SELECT 1", at: 4)
        XCTAssertEqual(life.readyForQueryReceived(status: I, at: 5).map(\.substatementID), [1])
        life.parseReceived(name: "", text: "")
        life.bindReceived(portal: "", statement: "")
        life.executeReceived(portal: "", at: 6)
        life.syncReceived()
        life.emptyQueryReceived(at: 7)
        XCTAssertEqual(life.readyForQueryReceived(status: I, at: 8), [])
        XCTAssertEqual(life.statementCount, 1)
    }

    /// A portal fetched in pieces is recorded once, when its first Execute is suspended (its
    /// statement has started; a write with RETURNING has run whole): later Executes of it add
    /// nothing, whether they complete it or the client never fetches the rest.
    func testPortalSuspendedIsRecordedOnceWhenItStops() {
        var life = StatementLifecycle()
        life.parseReceived(name: "", text: "SELECT * FROM big")
        life.bindReceived(portal: "c", statement: "")
        life.executeReceived(portal: "c", at: 0)
        life.executeReceived(portal: "c", at: 1)
        life.syncReceived()
        life.portalSuspendedReceived(at: 1)
        life.commandCompleteReceived(tag: "SELECT 7", at: 2)
        let records = life.readyForQueryReceived(status: I, at: 3)
        XCTAssertEqual(records.map(\.text), ["SELECT * FROM big"])
        XCTAssertEqual(records.map(\.startedAt), [0])
        XCTAssertEqual(records.map(\.tag), [nil], "rows of one piece are not the statement's")

        // Never fetched to the end: recorded at its Sync all the same.
        life.parseReceived(name: "w", text: "INSERT INTO t SELECT g FROM generate_series(1, 1000) g RETURNING g")
        life.bindReceived(portal: "", statement: "w")
        life.executeReceived(portal: "", at: 10)
        life.syncReceived()
        life.portalSuspendedReceived(at: 11)
        XCTAssertEqual(life.readyForQueryReceived(status: T, at: 12).map(\.text),
                       ["INSERT INTO t SELECT g FROM generate_series(1, 1000) g RETURNING g"])
        // A later Execute of it that fails is recorded: that is a new outcome.
        life.executeReceived(portal: "", at: 13)
        life.syncReceived()
        life.errorReceived(sqlState: "22012", message: "division by zero", refused: false, at: 14)
        XCTAssertEqual(life.readyForQueryReceived(status: E, at: 15).map(\.outcome), [.failed(sqlState: "22012", message: "division by zero")])
        // A session that ends with a suspended portal's Execute in flight adds no second record.
        life.bindReceived(portal: "p", statement: "w")
        life.executeReceived(portal: "p", at: 20)
        life.syncReceived()
        life.portalSuspendedReceived(at: 21)
        XCTAssertEqual(life.readyForQueryReceived(status: T, at: 22).count, 1)
        life.executeReceived(portal: "p", at: 23)
        XCTAssertEqual(life.sessionEnded(at: 24), [])
        XCTAssertEqual(life.statementCount, 4)
    }

    /// Pipelined: the client binds the unnamed portal anew before the server suspended the
    /// first one. The new portal is a statement of its own.
    func testASuspendedPortalDoesNotSilenceTheNextOneBoundUnderItsName() {
        var life = StatementLifecycle()
        life.parseReceived(name: "", text: "INSERT INTO t SELECT 1 RETURNING 1")
        life.bindReceived(portal: "", statement: "")
        life.executeReceived(portal: "", at: 0)
        life.syncReceived()
        life.parseReceived(name: "", text: "SELECT 2")
        life.bindReceived(portal: "", statement: "")
        life.executeReceived(portal: "", at: 1)
        life.executeReceived(portal: "", at: 2)
        life.syncReceived()
        life.portalSuspendedReceived(at: 3)
        XCTAssertEqual(life.readyForQueryReceived(status: T, at: 4).map(\.text), ["INSERT INTO t SELECT 1 RETURNING 1"])
        life.portalSuspendedReceived(at: 5)
        life.commandCompleteReceived(tag: "SELECT 0", at: 6)
        XCTAssertEqual(life.readyForQueryReceived(status: T, at: 7).map(\.text), ["SELECT 2"],
                       "recorded once, at its suspension; its second Execute continues it")
        XCTAssertEqual(life.statementCount, 2)
    }

    /// Beyond `maxNames` names only the oldest is forgotten, not every one.
    func testOnlyTheOldestNameIsForgotten() {
        var life = StatementLifecycle()
        life.parseReceived(name: "evil", text: "DELETE FROM victim")
        for index in 0..<StatementLifecycle.maxNames { life.parseReceived(name: "s\(index)", text: "SELECT \(index)") }
        life.bindReceived(portal: "", statement: "s1")
        life.executeReceived(portal: "", at: 0)
        life.bindReceived(portal: "", statement: "evil")
        life.executeReceived(portal: "", at: 1)
        life.syncReceived()
        life.commandCompleteReceived(tag: "SELECT 1", at: 2)
        life.commandCompleteReceived(tag: "DELETE 0", at: 3)
        XCTAssertEqual(life.readyForQueryReceived(status: I, at: 4).map(\.text), ["SELECT 1", "<unknown prepared statement \"evil\">"],
                       "the oldest, evil, is the one forgotten; s1 is kept")
        // Redefining a name makes it the newest.
        life.parseReceived(name: "s0", text: "SELECT 'again'")
        life.parseReceived(name: "new", text: "SELECT 'new'")
        life.bindReceived(portal: "", statement: "s0")
        life.executeReceived(portal: "", at: 5)
        life.syncReceived()
        life.commandCompleteReceived(tag: "SELECT 1", at: 6)
        XCTAssertEqual(life.readyForQueryReceived(status: I, at: 7).map(\.text), ["SELECT 'again'"])
    }

    /// Extended-protocol COPY FROM STDIN as libpq sends it: Parse/Bind/Execute/Sync at once, then
    /// CopyFail (or CopyDone) and a second Sync. The server ignores the first Sync (copy-in mode)
    /// and answers only the second; later statements must still be matched to their own replies —
    /// whether the proxy sees the CopyInResponse before or after the client's CopyFail.
    func testExtendedCopyInIgnoresTheSyncSentDuringCopy() {
        for copyEndFirst in [false, true] {
            var life = StatementLifecycle()
            life.parseReceived(name: "", text: "COPY t FROM STDIN")
            life.bindReceived(portal: "", statement: "")
            life.executeReceived(portal: "", at: 0)
            life.syncReceived()
            if copyEndFirst { life.copyEndReceived(); life.syncReceived(); life.copyInStarted() }
            else { life.copyInStarted(); life.copyEndReceived(); life.syncReceived() }
            life.errorReceived(sqlState: "57014", message: "COPY from stdin failed", refused: false, at: 10)
            XCTAssertEqual(life.readyForQueryReceived(status: I, at: 11).map(\.outcome),
                           [.failed(sqlState: "57014", message: "COPY from stdin failed")])
            for (index, text) in ["SELECT 1", "SELECT 1/0", "SELECT 2"].enumerated() {
                let t = Int64(100 * (index + 1))
                life.parseReceived(name: "", text: text)
                life.bindReceived(portal: "", statement: "")
                life.executeReceived(portal: "", at: t)
                life.syncReceived()
                if index == 1 { life.errorReceived(sqlState: "22012", message: "division by zero", refused: false, at: t + 10) }
                else { life.commandCompleteReceived(tag: "SELECT 1", at: t + 10) }
                let records = life.readyForQueryReceived(status: I, at: t + 20)
                XCTAssertEqual(records.map(\.text), [text], "copyEndFirst \(copyEndFirst): statement \(index) at its own ReadyForQuery")
                XCTAssertEqual(records.first?.finishedAt, t + 10)
            }
            XCTAssertEqual(life.statementCount, 4)
        }
    }


    func testBindParametersFollowTheirPortalToTheRecord() {
        var life = StatementLifecycle()
        life.parseReceived(name: "s", text: "SELECT $1, $2")
        life.bindReceived(portal: "p", statement: "s", parameters: ["42", nil])
        life.bindReceived(portal: "", statement: "s", parameters: ["7", "x"])
        life.executeReceived(portal: "p", at: 1)
        life.executeReceived(portal: "", at: 2)
        life.syncReceived()
        life.commandCompleteReceived(tag: "SELECT 1", at: 3)
        life.commandCompleteReceived(tag: "SELECT 1", at: 4)
        let records = life.readyForQueryReceived(status: I, at: 5)
        XCTAssertEqual(records.map(\.parameters), [["42", nil], ["7", "x"]])
        // A simple query has none.
        life.queryReceived("SELECT 1", at: 6)
        life.commandCompleteReceived(tag: "SELECT 1", at: 7)
        XCTAssertEqual(life.readyForQueryReceived(status: I, at: 8).map(\.parameters), [nil])
    }

    /// A client that vanishes mid-statement: what was sent and never answered is recorded as
    /// disconnected; what was answered but not yet released keeps its outcome.
    func testSessionEndRecordsStatementsInFlightAsDisconnected() {
        var life = StatementLifecycle()
        life.queryReceived("SELECT 1; SELECT pg_sleep(60); SELECT 3", at: 0)
        life.commandCompleteReceived(tag: "SELECT 1", at: 1)
        life.parseReceived(name: "", text: "INSERT INTO t VALUES ($1)")
        life.bindReceived(portal: "", statement: "", parameters: ["1"])
        life.executeReceived(portal: "", at: 2)
        life.syncReceived()
        life.functionCallReceived(oid: 764, at: 3)
        let records = life.sessionEnded(at: 10)
        XCTAssertEqual(records.map(\.outcome), [.ok, .disconnected, .disconnected, .disconnected])
        XCTAssertEqual(records.map(\.substatementID), [1, 2, 1, 1])
        XCTAssertEqual(records.map(\.statementID), [1, 1, 2, 3])
        XCTAssertEqual(records[2].text, "INSERT INTO t VALUES ($1)")
        XCTAssertEqual(records[2].parameters, ["1"])
        XCTAssertEqual(records[3].source, .functionCall(oid: 764))
        XCTAssertEqual(life.statementCount, 4)
        XCTAssertEqual(life.sessionEnded(at: 11), [])
    }

    func testSessionEndAfterAFailedStringRecordsNothingMore() {
        var life = StatementLifecycle()
        life.queryReceived("SELECT 1/0; SELECT 2", at: 0)
        life.errorReceived(sqlState: "22012", message: "division by zero", refused: false, at: 1)
        let records = life.sessionEnded(at: 2)
        XCTAssertEqual(records.map(\.outcome), [.failed(sqlState: "22012", message: "division by zero")])
    }

    // MARK: Definitions take effect when the server did them

    /// A Parse the server skips (after a Bind of a statement that does not exist, it discards
    /// up to Sync) leaves the name as it was: the Execute after it runs the INSERT, and the
    /// record says so (review 7, t2_skipparse.py).
    func testASkippedParseDoesNotRedefineTheName() {
        var life = StatementLifecycle()
        life.parseReceived(name: "s1", text: "INSERT INTO t VALUES (667, 'evil2')")
        life.syncReceived()
        life.extendedReplyReceived()  // ParseComplete
        XCTAssertEqual(life.readyForQueryReceived(status: I, at: 1), [])
        life.bindReceived(portal: "", statement: "nosuch")
        life.parseReceived(name: "s1", text: "SELECT 1 AS harmless")
        life.syncReceived()
        life.errorReceived(sqlState: "26000", message: "prepared statement \"nosuch\" does not exist", refused: false, at: 2)
        XCTAssertEqual(life.readyForQueryReceived(status: I, at: 3), [], "no Execute: nothing to record")
        life.bindReceived(portal: "", statement: "s1")
        life.executeReceived(portal: "", at: 4)
        life.syncReceived()
        life.extendedReplyReceived()  // BindComplete
        life.commandCompleteReceived(tag: "INSERT 0 1", at: 5)
        XCTAssertEqual(life.readyForQueryReceived(status: I, at: 6).map(\.text), ["INSERT INTO t VALUES (667, 'evil2')"])
    }

    /// A Parse of a name that exists fails (42P05) and the old statement stays
    /// (postgres.c exec_parse_message; review 7, t1_dupparse.py).
    func testAFailedParseDoesNotRedefineTheName() {
        var life = StatementLifecycle()
        life.parseReceived(name: "s1", text: "INSERT INTO t VALUES (666, 'evil')")
        life.syncReceived()
        life.extendedReplyReceived()
        _ = life.readyForQueryReceived(status: I, at: 1)
        life.parseReceived(name: "s1", text: "SELECT 1 AS harmless")
        life.syncReceived()
        life.errorReceived(sqlState: "42P05", message: "prepared statement \"s1\" already exists", refused: false, at: 2)
        XCTAssertEqual(life.readyForQueryReceived(status: I, at: 3).map(\.outcome),
                       [.failed(sqlState: "42P05", message: "prepared statement \"s1\" already exists")])
        life.bindReceived(portal: "", statement: "s1")
        life.executeReceived(portal: "", at: 4)
        life.syncReceived()
        life.commandCompleteReceived(tag: "INSERT 0 1", at: 5)
        XCTAssertEqual(life.readyForQueryReceived(status: I, at: 6).map(\.text), ["INSERT INTO t VALUES (666, 'evil')"])
    }

    /// Pipelined: the batch whose Parse fails was sent before the next batch's Bind, which
    /// the server runs with the old statement; a skipped Bind and Close change nothing either.
    func testPipelinedBatchesSeeOnlyWhatTheServerDid() {
        var life = StatementLifecycle()
        life.parseReceived(name: "s1", text: "DELETE FROM t")
        life.bindReceived(portal: "p", statement: "s1")
        life.syncReceived()
        // Batch 2 fails at its first message: its Parse, Bind and Close are skipped.
        life.parseReceived(name: "s1", text: "SELECT 'shadow'")
        life.bindReceived(portal: "p", statement: "s1")
        life.closeReceived(isStatement: true, name: "s1")
        life.syncReceived()
        // Batch 3 runs the portal and statement as the server has them.
        life.executeReceived(portal: "p", at: 10)
        life.bindReceived(portal: "", statement: "s1")
        life.executeReceived(portal: "", at: 11)
        life.syncReceived()
        for _ in 0..<2 { life.extendedReplyReceived() }
        XCTAssertEqual(life.readyForQueryReceived(status: T, at: 1), [])
        life.errorReceived(sqlState: "42P05", message: "prepared statement \"s1\" already exists", refused: false, at: 2)
        XCTAssertEqual(life.readyForQueryReceived(status: E, at: 3).map(\.text), ["SELECT 'shadow'"],
                       "the failed batch's record is what the client meant to run; it did not run")
        life.commandCompleteReceived(tag: "DELETE 3", at: 12)
        life.commandCompleteReceived(tag: "DELETE 0", at: 13)
        XCTAssertEqual(life.readyForQueryReceived(status: T, at: 14).map(\.text), ["DELETE FROM t", "DELETE FROM t"])
    }

    /// A name the session did not prepare (SQL PREPARE), or dropped by SQL DEALLOCATE: the
    /// record says its text is not known rather than show an empty or stale text.
    func testStatementsPreparedOrDeallocatedBySQLAreUnknown() {
        var life = StatementLifecycle()
        life.parseReceived(name: "s1", text: "SELECT 1 AS harmless")
        life.syncReceived()
        life.extendedReplyReceived()
        _ = life.readyForQueryReceived(status: I, at: 0)
        life.queryReceived("DEALLOCATE s1; PREPARE s1 AS INSERT INTO t VALUES (668, 'evil3')", at: 1)
        life.commandCompleteReceived(tag: "DEALLOCATE", at: 2)
        life.commandCompleteReceived(tag: "PREPARE", at: 3)
        XCTAssertEqual(life.readyForQueryReceived(status: I, at: 4).count, 2)
        life.bindReceived(portal: "", statement: "s1")
        life.executeReceived(portal: "", at: 5)
        life.bindReceived(portal: "", statement: "p2")
        life.executeReceived(portal: "", at: 6)
        life.syncReceived()
        life.commandCompleteReceived(tag: "INSERT 0 1", at: 7)
        life.commandCompleteReceived(tag: "DELETE 1", at: 8)
        let records = life.readyForQueryReceived(status: I, at: 9)
        XCTAssertEqual(records.map(\.text), ["<unknown prepared statement \"s1\">", "<unknown prepared statement \"p2\">"])
        XCTAssertEqual(records.map(\.textKnown), [false, false])
        XCTAssertEqual(records.map(\.command), ["INSERT", "DELETE"])
    }

    /// The session ends with the attack's batches in flight: the Parse of an existing name
    /// would fail, so the Execute after it is recorded with the statement the server has.
    func testSessionEndResolvesInFlightDefinitionsAsTheServerWould() {
        var life = StatementLifecycle()
        life.parseReceived(name: "s1", text: "INSERT INTO t VALUES (1)")
        life.syncReceived()
        life.extendedReplyReceived()
        _ = life.readyForQueryReceived(status: I, at: 0)
        life.bindReceived(portal: "", statement: "nosuch")
        life.parseReceived(name: "s1", text: "SELECT 1 AS harmless")
        life.syncReceived()
        life.bindReceived(portal: "", statement: "s1")
        life.executeReceived(portal: "", at: 1)
        life.syncReceived()
        XCTAssertEqual(life.sessionEnded(at: 2).map(\.text), ["INSERT INTO t VALUES (1)"])
    }

    /// A Query string the session ended in: its record stands for the statement running and
    /// every later one (the server runs the rest of the string).
    func testSessionEndMarksTheRestOfTheString() {
        var life = StatementLifecycle()
        life.queryReceived("SELECT pg_sleep(0.5); CREATE TABLE hidden_ddl(x int)", at: 0)
        let records = life.sessionEnded(at: 1)
        XCTAssertEqual(records.map(\.substatementID), [1])
        XCTAssertEqual(records.map(\.throughEndOfString), [true])
    }
}
