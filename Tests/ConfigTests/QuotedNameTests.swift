import XCTest

@testable import Config

/// Names in [databases] and [identities] that an unquoted key cannot hold: blanks, "=",
/// a leading "#" or ";", a double quote ("" inside the quotes).
final class QuotedNameTests: XCTestCase {
    func entries(_ text: String) -> ([String], [String]) {
        let (document, errors) = IniParser.parse(text, rawValueSections: ["raw"])
        let entries = document.sections.flatMap { section in
            section.entries.map { "\(section.name).\($0.key)@\($0.line)=[\($0.value)]" }
        }
        return (entries, errors.map { "\($0.line): \($0.message)" })
    }

    func testQuotedNamesInRawSections() {
        let (parsed, errors) = entries(#"""
            [raw]
            "bob smith" = mode=read-only
            "a=b"=x
            "#not a comment" = y
            ";nor this" = z
            "say ""hi""" = w
              " padded "   =   v ; kept for the connection string
            """#)
        XCTAssertEqual(errors, [])
        XCTAssertEqual(parsed, ["raw.bob smith@2=[mode=read-only]", "raw.a=b@3=[x]", "raw.#not a comment@4=[y]",
                                "raw.;nor this@5=[z]", "raw.say \"hi\"@6=[w]", "raw. padded @7=[v ; kept for the connection string]"])
    }

    func testQuotedNameErrors() {
        let (parsed, errors) = entries("""
            [raw]
            "open = x
            "" = x
            "name" x
            [s]
            "listen_port" = 1
            """)
        XCTAssertEqual(parsed, [])
        XCTAssertEqual(errors, ["2: syntax error: unterminated quoted name", "3: syntax error: empty quoted name",
                                "4: syntax error: expected \"=\" after quoted name \"name\"",
                                "6: syntax error: quoted names are allowed only in [raw]"])
    }

    func testQuotedIdentityAndDatabaseNamesLoad() throws {
        let config = try ConfigLoader.parse("""
            [portcullis]
            listen_addresses = 127.0.0.1
            local_auth_method = trust
            host_auth_method = trust
            [tls]
            client_tls = disable
            [databases]
            "my db" = host=/run/postgresql dbname=app
            "a=b" = host=/run/postgresql
            [identities]
            "bob smith" = mode=read-write
            "#ops" = mode=read-only
            ";x" = mode=read-only
            "o""brien" = mode=read-only
            """, fileName: "t.ini")
        XCTAssertEqual(Set(config.databases.keys), ["my db", "a=b"])
        XCTAssertEqual(config.databases["my db"]?.dbname, "app")
        XCTAssertEqual(Set(config.identities.keys), ["bob smith", "#ops", ";x", "o\"brien"])
        XCTAssertEqual(config.identities["bob smith"]?.mode, .readWrite)
    }

    func testErrorsNameTheQuotedIdentity() {
        XCTAssertThrowsError(try ConfigLoader.parse("""
            [portcullis]
            listen_addresses = 127.0.0.1
            [tls]
            client_tls = disable
            [databases]
            app = host=/run/postgresql
            [identities]
            "bob smith" = mode=sometimes
            """, fileName: "t.ini")) { error in
            XCTAssertTrue("\(error)".contains("t.ini:8: identity \"bob smith\": mode:"), "\(error)")
        }
    }
}
