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
        Case(parameters: [("client_encoding", "LATIN1"), ("application_name", "psql")], refused: nil),
        Case(parameters: [("client_encoding", "EUC_JP")], refused: nil),
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
    ]

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
}
