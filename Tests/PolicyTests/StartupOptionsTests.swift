import Testing
@testable import Policy

/// The `options` decoder against what PostgreSQL 15.18 did with the same bytes (each case was
/// run as `PGOPTIONS=<options> psql -c "select current_setting('x.a', true), …"` against a
/// PostgreSQL 15 cluster; the expected values are what the server showed or its FATAL text).
@Suite struct StartupOptionsTests {
    struct Case: CustomStringConvertible, Sendable {
        let options: String
        /// Decoded items, or the FATAL message.
        let expected: Result<[StartupOptions.Item], StartupOptions.DecodingError>
        var description: String { options.debugDescription }
    }

    static func set(_ name: String, _ value: String, _ switchCharacter: Character = "c") -> StartupOptions.Item {
        .setting(name: name, value: value, switchCharacter: switchCharacter)
    }

    static func fatal(_ message: String) -> Result<[StartupOptions.Item], StartupOptions.DecodingError> {
        .failure(StartupOptions.DecodingError(sqlState: "42601", message: message))
    }

    static let cases: [Case] = [
        // isspace() in the C locale: \v, \f, \r\n and \t separate words.
        Case(options: "-c\u{0B}x.a=1", expected: .success([set("x.a", "1")])),
        Case(options: "-c\u{0C}x.a=1", expected: .success([set("x.a", "1")])),
        Case(options: "-c\r\nx.a=1", expected: .success([set("x.a", "1")])),
        Case(options: "\t-c x.a=1\t", expected: .success([set("x.a", "1")])),
        Case(options: "-c\u{0B}role=app_rw", expected: .success([set("role", "app_rw")])),
        // Backslash escapes.
        Case(options: "-c x.a=a\\ b", expected: .success([set("x.a", "a b")])),
        Case(options: "-c x.a=a\\\\b", expected: .success([set("x.a", "a\\b")])),
        Case(options: "-c x.a=ab\\", expected: .success([set("x.a", "ab")])),
        Case(options: "-c x.a=\\", expected: .success([set("x.a", "")])),
        Case(options: "\\-c x.a=1", expected: .success([set("x.a", "1")])),
        Case(options: "-c x.a=é\\ é", expected: .success([set("x.a", "é é")])),
        // getopt: clustering, arguments in the same word, --name=value.
        Case(options: "-cx.a=1 --x.b=2", expected: .success([set("x.a", "1"), set("x.b", "2", "-")])),
        Case(options: "-ec x.a=1", expected: .success([.flag("e", argument: nil), set("x.a", "1")])),
        Case(options: "-ecrole=app_rw", expected: .success([.flag("e", argument: nil), set("role", "app_rw")])),
        Case(options: "-Pcx.a=1", expected: .success([.flag("P", argument: nil), set("x.a", "1")])),
        Case(options: "-fs -c x.a=1", expected: .success([.flag("f", argument: "s"), set("x.a", "1")])),
        Case(options: "--x-a=1", expected: .success([set("x_a", "1", "-")])),
        Case(options: "--session-authorization=app_rw",
             expected: .success([set("session_authorization", "app_rw", "-")])),
        Case(options: "-c x.a=1=2", expected: .success([set("x.a", "1=2")])),
        Case(options: "-c x.a=1 -c x.a=2", expected: .success([set("x.a", "1"), set("x.a", "2")])),
        Case(options: "-c --x.a=1", expected: .success([set("__x.a", "1")])),
        Case(options: "-c x.a=1 --", expected: .success([set("x.a", "1")])),
        Case(options: "--", expected: .success([])),
        Case(options: "", expected: .success([])),
        // The backend's errors.
        Case(options: "-c x.a", expected: fatal("-c x.a requires a value")),
        Case(options: "--x.a", expected: fatal("--x.a requires a value")),
        Case(options: "-c \\ ", expected: fatal("-c   requires a value")),
        Case(options: "-c\\  x.a=1", expected: fatal("-c   requires a value")),
        Case(options: "-c", expected: fatal("invalid command-line argument for server process: -c")),
        Case(options: "-x", expected: fatal("invalid command-line argument for server process: -x")),
        Case(options: "-", expected: fatal("invalid command-line argument for server process: -")),
        Case(options: "-- -c x.a=1", expected: fatal("invalid command-line argument for server process: -c")),
        Case(options: "-c role=app_rw foo", expected: fatal("invalid command-line argument for server process: foo")),
    ]

    @Test(arguments: cases)
    func decodesAsPostgreSQL(_ testCase: Case) {
        #expect(StartupOptions.decode(testCase.options) == testCase.expected)
    }

    @Test func splitsOnTheSixCLocaleSpacesOnly() {
        for space: UInt8 in [0x20, 0x09, 0x0A, 0x0B, 0x0C, 0x0D] {
            #expect(StartupOptions.split([0x61, space, 0x62]) == [[0x61], [0x62]])
        }
        // NBSP (UTF-8 C2 A0) and other bytes are part of a word.
        #expect(StartupOptions.split([0x61, 0xC2, 0xA0, 0x62]) == [[0x61, 0xC2, 0xA0, 0x62]])
        #expect(StartupOptions.split([0x61, 0x1C, 0x62]) == [[0x61, 0x1C, 0x62]])
    }
}
