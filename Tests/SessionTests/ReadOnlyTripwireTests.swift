import XCTest
import Wire
@testable import Session

/// The tripwire on the server's reported settings (values as PostgreSQL 15 reports them).
final class ReadOnlyTripwireTests: XCTestCase {
    /// What PostgreSQL 15 sends a read-only session at start-up (captured from psql -d ... -c '' with
    /// PGOPTIONS unset, app_ro through the proxy's startup packet).
    static let pg15Startup: [(String, String)] = [
        ("application_name", "psql"), ("client_encoding", "UTF8"), ("DateStyle", "ISO, MDY"),
        ("default_transaction_read_only", "on"), ("in_hot_standby", "off"), ("integer_datetimes", "on"),
        ("IntervalStyle", "postgres"), ("is_superuser", "off"), ("server_encoding", "UTF8"),
        ("server_version", "15.14"), ("session_authorization", "app_ro"),
        ("standard_conforming_strings", "on"), ("TimeZone", "Etc/UTC"),
    ]

    func testOrdinaryStartupHolds() {
        var wire = ReadOnlyTripwire()
        XCTAssertEqual(wire.startupParametersReceived(Self.pg15Startup), .holds)
    }

    func testStartupWithUnsafeDefaultsIsBreached() {
        for (name, value) in [("default_transaction_read_only", "off"), ("client_encoding", "SJIS"),
                              ("client_encoding", "BIG5"), ("standard_conforming_strings", "off")] {
            var wire = ReadOnlyTripwire()
            let parameters = Self.pg15Startup.map { $0.0 == name ? (name, value) : $0 }
            guard case .breached(let reason) = wire.startupParametersReceived(parameters) else {
                XCTFail("\(name)=\(value) should breach"); continue
            }
            XCTAssertTrue(reason.contains(name) && reason.contains(value), reason)
        }
    }

    func testServerThatDoesNotReportReadOnlyModeIsRefused() {
        // PostgreSQL 13 and older do not report default_transaction_read_only.
        var wire = ReadOnlyTripwire()
        let parameters = Self.pg15Startup.filter { $0.0 != "default_transaction_read_only" }
        guard case .breached(let reason) = wire.startupParametersReceived(parameters) else { return XCTFail() }
        XCTAssertTrue(reason.contains("PostgreSQL 14"), reason)
    }

    func testLaterChanges() {
        var wire = ReadOnlyTripwire()
        XCTAssertEqual(wire.startupParametersReceived(Self.pg15Startup), .holds)
        // Harmless changes, and the unchanged values reported again, hold.
        XCTAssertEqual(wire.parameterStatusReceived(name: "application_name", value: "x"), .holds)
        XCTAssertEqual(wire.parameterStatusReceived(name: "client_encoding", value: "UTF8"), .holds)
        XCTAssertEqual(wire.parameterStatusReceived(name: "session_authorization", value: "app_ro"), .holds)
        XCTAssertEqual(wire.parameterStatusReceived(name: "default_transaction_read_only", value: "on"), .holds)
        // Anything that leaves read-only mode or changes who the session is.
        XCTAssertNotEqual(wire.parameterStatusReceived(name: "default_transaction_read_only", value: "off"), .holds)
        XCTAssertNotEqual(wire.parameterStatusReceived(name: "session_authorization", value: "postgres"), .holds)
        XCTAssertNotEqual(wire.parameterStatusReceived(name: "is_superuser", value: "on"), .holds)
        XCTAssertNotEqual(wire.parameterStatusReceived(name: "client_encoding", value: "GBK"), .holds)
        // Any encoding but UTF8: the gate matches names as UTF-8 (LATIN1 keeps the syntax
        // bytes, but `"Ã©vil"` is another name in it).
        XCTAssertNotEqual(wire.parameterStatusReceived(name: "client_encoding", value: "LATIN1"), .holds)
        XCTAssertNotEqual(wire.parameterStatusReceived(name: "client_encoding", value: "EUC_JP"), .holds)
        XCTAssertNotEqual(wire.parameterStatusReceived(name: "standard_conforming_strings", value: "off"), .holds)
    }

    func testRefusalIsAFatal25006NamingTheIdentity() {
        let fields = ReadOnlyTripwire.errorFields(for: "the server reported default_transaction_read_only = off", identity: "agent")
        XCTAssertEqual(fields.sqlState, "25006")
        XCTAssertEqual(fields.severity, "FATAL")
        XCTAssertTrue(fields.message?.contains("\"agent\"") ?? false)
    }
}
