import Foundation
import XCTest

/// The audit fails closed on text the server reads otherwise than libpg_query (docs/AUDIT.md,
/// "Text the server reads differently"), also when the client leaves in its very first Query
/// string (found in review: before any ReadyForQuery had reported how the server reads text,
/// the string was split as libpg_query reads it, and `audit_classes = write` recorded nothing
/// of the INSERT PostgreSQL ran).
final class AuditUnsplitTests: IntegrationTestCase {
    func testAClientLeavingInItsFirstStringIsRecordedUnsplit() throws {
        try requireProxyTarget("the audit stream is a proxy feature")
        let h = try harness
        let table = marker("unsplit")
        _ = try h.cluster.superuserPsql("CREATE TABLE \(table) (a int); GRANT ALL ON \(table) TO app_rw", dbname: "app")
        defer { _ = try? h.cluster.superuserPsql("DROP TABLE IF EXISTS \(table)", dbname: "app") }
        let dir = try h.makeDir("audit-unsplit")
        try "host all all 127.0.0.1/32 trust\n".write(toFile: "\(dir)/pg_hba.conf", atomically: true, encoding: .utf8)
        let file = "\(dir)/audit.json"
        var options = ProxyProcess.Options(upstream: h.cluster)
        options.clientTLS = "allow"
        options.extraSettings = ["audit = on", "audit_sinks = json:\(file)", "audit_classes = write", "hba_file = \(dir)/pg_hba.conf"]
        let proxy = try ProxyProcess(harness: h, options: options)
        defer { proxy.stop() }

        // With standard_conforming_strings off, `'x\'` is a complete literal to the server: it
        // runs SELECT, SELECT, INSERT. libpg_query reads one literal up to the `$$` and no INSERT.
        var client: WireClient? = try WireClient(port: proxy.port, user: "app_rw",
                                                 parameters: [("options", "-c standard_conforming_strings=off")])
        let sql = "SELECT pg_sleep(0.5); SELECT 'x\\'; SELECT $$'; INSERT INTO \(table) VALUES (1) --$$"
        XCTAssertTrue(client?.socket.send(WireClient.query(sql)) ?? false)
        client?.armReset()
        client = nil
        XCTAssertTrue(poll(timeout: 20) { (try? h.cluster.query("SELECT count(*) FROM \(table)", dbname: "app")) == "1" },
                      "PostgreSQL ran the INSERT")
        XCTAssertTrue(poll(timeout: 20) {
            let text = (try? String(contentsOfFile: file, encoding: .utf8)) ?? ""
            return text.contains("\"audit_event\":\"disconnect\"")
        }, "the session's end is recorded")
        let records = ((try? String(contentsOfFile: file, encoding: .utf8)) ?? "").split(separator: "\n").compactMap {
            (try? JSONSerialization.jsonObject(with: Data($0.utf8))) as? [String: Any]
        }
        let recorded = records.filter { ($0["audit_event"] as? String) == "statement" && "\($0["audit_statement"] ?? "")".contains("INSERT INTO \(table)") }
        XCTAssertEqual(recorded.count, 1, "the string is recorded whole although audit_classes = write: \(records)")
        XCTAssertNotNil(recorded.first?["audit_text_note"], "\(recorded)")
    }
}
