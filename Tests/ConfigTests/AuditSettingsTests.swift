import XCTest
@testable import Config

final class AuditSettingsTests: XCTestCase {
    private func load(_ lines: String, identity: String = "") throws -> PortcullisConfig {
        try ConfigLoader.parse("""
            [portcullis]
            \(lines)
            [databases]
            app = host=127.0.0.1 port=5432 dbname=app sslmode=disable
            [identities]
            agent = mode=read-only password='md5aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa' \(identity)
            [tls]
            client_tls = disable
            """, fileName: "audit.ini")
    }

    func testDefaultsAreOff() throws {
        let audit = try load("").general.audit
        XCTAssertFalse(audit.enabled)
        XCTAssertEqual(audit.sinks, [.journald])
        XCTAssertEqual(audit.queueFull, .backpressure)
        XCTAssertEqual(audit.queueSize, 10_000)
        XCTAssertEqual(audit.statementText, .full)
        XCTAssertEqual(audit.classes, Set(AuditSettings.classNames))
        XCTAssertEqual(audit.journaldFields, .full)
        // A bounded default (pgAudit's is 0): the loop formats and queues every kept value.
        XCTAssertEqual(audit.logParameterMaxSize, 1_048_576)
        XCTAssertEqual(audit.queueMaxBytes, 64 << 20)
    }

    func testQueueMaxBytesTakesASize() throws {
        XCTAssertEqual(try load("audit_queue_max_bytes = 16MB").general.audit.queueMaxBytes, 16 << 20)
        XCTAssertThrowsError(try load("audit_queue_max_bytes = 4kB"))
    }

    func testParameterMaxSizeZeroStillMeansNoLimit() throws {
        XCTAssertEqual(try load("audit_log_parameter_max_size = 0").general.audit.logParameterMaxSize, 0)
        XCTAssertEqual(try load("audit_log_parameter_max_size = 8").general.audit.logParameterMaxSize, 8)
    }

    func testEverySetting() throws {
        let config = try load("""
            audit = on
            audit_sinks = journald, json:/var/log/portcullis/audit.json, json:stdout
            audit_json_fsync = 500ms
            audit_journald_fields = compact
            audit_queue_size = 64
            audit_queue_full = drop
            audit_statement_text = normalized
            audit_classes = read, WRITE, misc_set
            """, identity: "audit_statement_text=none")
        let audit = config.general.audit
        XCTAssertTrue(audit.enabled)
        XCTAssertEqual(audit.sinks, [.journald, .json(path: "/var/log/portcullis/audit.json"), .json(path: nil)])
        XCTAssertEqual(audit.jsonFsync, .interval(.milliseconds(500)))
        XCTAssertEqual(audit.journaldFields, .compact)
        XCTAssertEqual(audit.queueSize, 64)
        XCTAssertEqual(audit.queueFull, .drop)
        XCTAssertEqual(audit.statementText, .normalized)
        XCTAssertEqual(audit.classes, ["READ", "WRITE", "MISC_SET"])
        XCTAssertEqual(config.identities["agent"]?.auditStatementText, AuditSettings.TextMode.none)
        XCTAssertEqual(try load("audit_json_fsync = batch").general.audit.jsonFsync, .batch)
    }

    func testBadValuesAreErrorsWithTheirLine() {
        for bad in ["audit_sinks = json:relative.json", "audit_sinks = syslog", "audit_queue_full = block",
                    "audit_classes = read, select", "audit_statement_text = some", "audit_queue_size = 1", "audit_bogus = 1",
                    "audit_journald_fields = short"] {
            XCTAssertThrowsError(try load(bad), bad) { error in
                XCTAssertTrue("\(error)".contains("audit.ini:2"), "\(bad): \(error)")
            }
        }
    }
}
