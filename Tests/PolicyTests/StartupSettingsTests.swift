import Testing
@testable import Policy

/// Startup-packet settings of read-only identities: protected settings and client-only
/// encodings whose multibyte characters can contain ASCII bytes (``ClientEncodingPolicy``).
@Suite struct StartupSettingsTests {
    struct Case: CustomStringConvertible, Sendable {
        let parameters: [(name: String, value: String)]
        /// nil = allowed.
        let refused: String?
        var description: String { parameters.map { "\($0.name)=\($0.value)" }.joined(separator: " ") }
    }

    static let cases: [Case] = [
        Case(parameters: [("client_encoding", "UTF8")], refused: nil),
        Case(parameters: [("client_encoding", "UTF8"), ("application_name", "psql")], refused: nil),
        Case(parameters: [("client_encoding", "LATIN1")], refused: "client_encoding"),
        Case(parameters: [("client_encoding", "EUC_JP")], refused: "client_encoding"),
        Case(parameters: [("options", "-c client_encoding=UTF8")], refused: nil),
        Case(parameters: [("client_encoding", "SJIS")], refused: "client_encoding"),
        Case(parameters: [("client_encoding", "Shift_JIS")], refused: "client_encoding"),
        Case(parameters: [("client_encoding", "BIG5")], refused: "client_encoding"),
        Case(parameters: [("client_encoding", "windows-936")], refused: "client_encoding"),
        Case(parameters: [("client_encoding", "uhc")], refused: "client_encoding"),
        Case(parameters: [("client_encoding", "GB18030")], refused: "client_encoding"),
        Case(parameters: [("client_encoding", "johab")], refused: "client_encoding"),
        Case(parameters: [("client_encoding", "SHIFT_JIS_2004")], refused: "client_encoding"),
        Case(parameters: [("Client_Encoding", "mskanji")], refused: "client_encoding"),
        Case(parameters: [("options", "-c client_encoding=sjis")], refused: "client_encoding"),
        Case(parameters: [("options", "-cclient_encoding=win950")], refused: "client_encoding"),
        Case(parameters: [("options", "--client-encoding=GBK")], refused: "client_encoding"),
        Case(parameters: [("options", "-c work_mem=64MB -c client_encoding=Big\\ 5")], refused: "client_encoding"),
        Case(parameters: [("options", "-c default_transaction_read_only=off")],
             refused: "default_transaction_read_only"),
        Case(parameters: [("role", "postgres")], refused: "role"),
        // Every startup parameter and every options switch follows the SET rules (issue 9.2).
        Case(parameters: [("search_path", "evil, pg_catalog")], refused: "search_path"),
        Case(parameters: [("search_path", "evil,\tpg_catalog")], refused: "search_path"),
        Case(parameters: [("search_path", "evil,\"pg_catalog\"")], refused: "search_path"),
        Case(parameters: [("search_path", "evil,PG_CATALOG")], refused: "search_path"),
        Case(parameters: [("search_path", "evil,,pg_catalog")], refused: "search_path"),
        Case(parameters: [("search_path", "pg_catalog, evil")], refused: nil),
        Case(parameters: [("search_path", "evil,\"PG_CATALOG\"")], refused: nil),
        Case(parameters: [("search_path", "\"$user\", public")], refused: nil),
        Case(parameters: [("options", "-c search_path=evil,pg_catalog")], refused: "search_path"),
        Case(parameters: [("options", "-c\u{0B}role=app_rw")], refused: "role"),
        Case(parameters: [("options", "-c\u{0C}role=app_rw")], refused: "role"),
        Case(parameters: [("options", "-c\r\nrole=app_rw")], refused: "role"),
        Case(parameters: [("options", "-ecrole=app_rw")], refused: "-e"),
        Case(parameters: [("options", "-Pcrole=app_rw")], refused: "-P"),
        Case(parameters: [("options", "-e")], refused: "-e"),
        Case(parameters: [("options", "-fs")], refused: "-fs"),
        Case(parameters: [("options", "-c ROLE=app_rw")], refused: "role"),
        Case(parameters: [("options", "--role=app_rw")], refused: "role"),
        Case(parameters: [("options", "--session-authorization=app_rw")], refused: "session_authorization"),
        Case(parameters: [("options", "-c session_replication_role=replica")], refused: "session_replication_role"),
        Case(parameters: [("options", "-c transaction_read_only=off")], refused: "transaction_read_only"),
        Case(parameters: [("options", "-c default_transaction_read_only=on")], refused: nil),
        Case(parameters: [("options", "-c default_transaction_read_only=TRUE")], refused: nil),
        Case(parameters: [("options", "-c default_transaction_read_only=o")], refused: "default_transaction_read_only"),
        Case(parameters: [("options", "-c default_transaction_read_only=\\ on")], refused: "default_transaction_read_only"),
        Case(parameters: [("transaction_read_only", "1")], refused: nil),
        Case(parameters: [("transaction_read_only", "0")], refused: "transaction_read_only"),
        Case(parameters: [("options", "-c user=postgres")], refused: "user"),
        Case(parameters: [("options", "-c role=app_rw foo")], refused: "options"),
        Case(parameters: [("options", "-c role")], refused: "options"),
        Case(parameters: [("r\u{F4}le", "app_rw")], refused: "r\u{F4}le"),
    ]

    /// Accepted settings go upstream as separate parameters, those of `options` first.
    @Test func acceptedSettingsBecomeParameters() {
        let verdict = StartupSettingsPolicy.judge([
            ("application_name", "b"), ("options", "-c application_name=a --work-mem=64MB -c x.y=a\\ b"),
        ])
        #expect(verdict == .accepted([
            .init(name: "application_name", value: "a"), .init(name: "work_mem", value: "64MB"),
            .init(name: "x.y", value: "a b"), .init(name: "application_name", value: "b"),
        ]))
    }

    @Test(arguments: cases)
    func startupParameters(_ expected: Case) {
        #expect(StartupSettingsPolicy.protectedSetting(in: expected.parameters) == expected.refused)
    }

    /// Every alias of the seven encodings in src/common/encnames.c, as PostgreSQL 15 accepts them.
    @Test(arguments: ["SJIS", "Shift_JIS", "MS_Kanji", "WIN932", "Windows932", "SHIFT_JIS_2004", "BIG5",
                      "WIN950", "Windows950", "GBK", "WIN936", "Windows936", "UHC", "WIN949", "Windows949",
                      "GB18030", "JOHAB"])
    func unsafeEncodingAliases(name: String) {
        #expect(ClientEncodingPolicy.isUnsafe(name))
        #expect(ClientEncodingPolicy.isUnsafe(name.lowercased()))
    }

    @Test(arguments: ["UTF8", "unicode", "LATIN1", "ISO-8859-1", "EUC_JP", "EUC_CN", "EUC_KR", "EUC_TW",
                      "EUC_JIS_2004", "MULE_INTERNAL", "SQL_ASCII", "WIN1252", "KOI8R", "WIN866", ""])
    func safeEncodings(name: String) {
        #expect(!ClientEncodingPolicy.isUnsafe(name))
    }

    /// A read-only identity reads in UTF8 only, in every spelling encnames.c has for it.
    @Test(arguments: ["UTF8", "utf8", "UTF-8", "Unicode", "utf_8"])
    func readOnlyEncodings(name: String) {
        #expect(ClientEncodingPolicy.isReadOnlyAllowed(name))
    }

    @Test(arguments: ["LATIN1", "SQL_ASCII", "EUC_JP", "WIN1252", "SJIS", ""])
    func encodingsReadOnlyIdentitiesMayNotUse(name: String) {
        #expect(!ClientEncodingPolicy.isReadOnlyAllowed(name))
    }
}
