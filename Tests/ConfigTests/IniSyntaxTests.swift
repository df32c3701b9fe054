import XCTest

@testable import Config

/// INI-level syntax: comments, quoting, case folding and line numbering.
final class IniSyntaxTests: XCTestCase {
    func entries(_ text: String) -> ([String], [String]) {
        let (document, errors) = IniParser.parse(text, rawValueSections: ["raw"])
        let entries = document.sections.flatMap { section in
            section.entries.map { "\(section.name).\($0.key)@\($0.line)=[\($0.value)]" }
        }
        return (entries, errors.map { "\($0.line): \($0.message)" })
    }

    func testCommentsAndWhitespace() {
        let (parsed, errors) = entries("""
            ; leading comment
            # another
              [S]  # after header
            a = 1 ; trailing
            b = x;y#z
            c = ;only a comment
            d =
            \tE\t=\tv w\t
            """)
        XCTAssertEqual(errors, [])
        XCTAssertEqual(parsed, ["s.a@4=[1]", "s.b@5=[x;y#z]", "s.c@6=[]", "s.d@7=[]", "s.e@8=[v w]"])
    }

    func testQuotedValues() {
        let (parsed, errors) = entries("""
            [s]
            a = 'x ; y # z'
            b = 'it''s'
            c = ''
            d = '''' ; comment
            e = 'a=b' # comment
            """)
        XCTAssertEqual(errors, [])
        XCTAssertEqual(parsed, ["s.a@2=[x ; y # z]", "s.b@3=[it's]", "s.c@4=[]", "s.d@5=[']", "s.e@6=[a=b]"])
    }

    func testRawSectionsKeepConnectionStringQuotingAndCase() {
        let (parsed, errors) = entries("""
            [raw]
            MyDB = host=x password='a ;b'  ; note
            """)
        XCTAssertEqual(errors, [])
        XCTAssertEqual(parsed, ["raw.MyDB@2=[host=x password='a ;b'  ; note]"])
    }

    func testSyntaxErrorsCarryLines() {
        let (_, errors) = entries("""
            [s]
            ok = 1
            broken
            q = 'open
            [unclosed
            [] 
            [t] x
            """)
        XCTAssertEqual(errors, [
            "3: syntax error: expected \"key = value\" or \"[section]\"",
            "4: q: unterminated quoted value",
            "5: syntax error: section header lacks a closing \"]\"",
            "6: syntax error: empty section name",
            "7: syntax error: unexpected text after section header",
        ])
    }

    func testCarriageReturnsAreStripped() {
        let (parsed, errors) = entries("[s]\r\na = 1\r\nb = 'q'\r\n")
        XCTAssertEqual(errors, [])
        XCTAssertEqual(parsed, ["s.a@2=[1]", "s.b@3=[q]"])
    }

    func testErrorsAreReportedInLineOrder() throws {
        let text = """
            [databases]
            app = host=db sslmode=prefer
            [portcullis]
            workers = many
            [tls]
            """
        XCTAssertThrowsError(try ConfigLoader.parse(text, fileName: "f.ini")) { error in
            let lines = (error as? ConfigErrors)?.errors.map(\.line)
            XCTAssertEqual(lines, [2, 4, 5])
            XCTAssertEqual(String(describing: error).split(separator: "\n").count, 3)
        }
    }
}

final class ByteOrderMarkTests: XCTestCase {
    func testLeadingByteOrderMarkIsIgnored() throws {
        let config = try ConfigLoader.parse(
            "\u{FEFF}[tls]\nclient_tls = disable\n[databases]\napp = host=db sslmode=disable\n", fileName: "bom.ini")
        XCTAssertEqual(config.tls.mode, .disable)
        XCTAssertEqual(config.databases["app"]?.sslMode, .disable)
    }
}
