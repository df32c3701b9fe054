import XCTest

@testable import Access

/// FATAL texts of auth.c ClientAuthentication (PostgreSQL 15). The local, IPv4 and IPv6
/// variants were compared with what psql printed from PostgreSQL 15 (see comments).
final class HbaRejectionTests: XCTestCase {
    func testNoEntryMessages() {
        XCTAssertEqual(HbaRejection.noEntryMessage(ConnectionAttempt(kind: .host(ssl: true), clientAddress: ip("127.0.0.1"), database: "d", user: "u")),
                       #"no pg_hba.conf entry for host "127.0.0.1", user "u", database "d", SSL encryption"#)
        XCTAssertEqual(HbaRejection.noEntryMessage(ConnectionAttempt(kind: .host(ssl: false), clientAddress: ip("::1"), database: "d", user: "u")),
                       #"no pg_hba.conf entry for host "::1", user "u", database "d", no encryption"#)
        XCTAssertEqual(HbaRejection.noEntryMessage(ConnectionAttempt(kind: .local, clientAddress: nil, database: "d", user: "u")),
                       #"no pg_hba.conf entry for host "[local]", user "u", database "d", no encryption"#)
        XCTAssertEqual(HbaRejection.noEntryMessage(ConnectionAttempt(kind: .host(ssl: false), clientAddress: ip("10.0.0.1"), database: "", user: "rep", isReplication: true)),
                       #"no pg_hba.conf entry for replication connection from host "10.0.0.1", user "rep", no encryption"#)
        XCTAssertEqual(HbaRejection.sqlState, "28000")
    }

    func testRejectMessages() {
        XCTAssertEqual(HbaRejection.rejectMessage(ConnectionAttempt(kind: .host(ssl: true), clientAddress: ip("::ffff:10.1.2.3"), database: "app", user: "bob")),
                       #"pg_hba.conf rejects connection for host "::ffff:10.1.2.3", user "bob", database "app", SSL encryption"#)
        XCTAssertEqual(HbaRejection.rejectMessage(ConnectionAttempt(kind: .local, clientAddress: nil, database: "", user: "rep", isReplication: true)),
                       #"pg_hba.conf rejects replication connection for host "[local]", user "rep", no encryption"#)
    }
}
