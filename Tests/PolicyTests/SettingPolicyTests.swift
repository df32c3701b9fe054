import Testing
@testable import Policy

/// SettingPolicy's readings of setting values, against what PostgreSQL 15.18 did with the same
/// text: `set_config('enable_seqscan', v, false)` for booleans, and
/// `set_config('search_path', v, false)` followed by `current_schemas(true)` (where pg_catalog
/// really is) for search paths, with schemas `evil` and `"Evil"` present.
@Suite struct SettingPolicyTests {
    @Test(arguments: ["t", "tr", "tru", "true", "TRUE", "True", "y", "ye", "yes", "YES", "on", "ON", "On", "1"])
    func postgresReadsTrue(_ value: String) {
        #expect(SettingPolicy.parsesAsTrue(value))
        #expect(SettingPolicy.refusal(name: "default_transaction_read_only", value: value) == nil)
        #expect(SettingPolicy.refusal(name: "Transaction_Read_Only", value: value) == nil)
        // Other protected settings have no safe value.
        #expect(SettingPolicy.refusal(name: "role", value: value) != nil)
    }

    @Test(arguments: ["o", "of", "off", "onx", " on", "on ", "truex", "01", "", "yes ", "2", "n", "no", "f", "false", "0"])
    func postgresDoesNotReadTrue(_ value: String) {
        #expect(!SettingPolicy.parsesAsTrue(value))
        #expect(SettingPolicy.refusal(name: "default_transaction_read_only", value: value) != nil)
    }

    struct SearchPath: CustomStringConvertible, Sendable {
        let value: String
        /// nil: PostgreSQL says "invalid value for parameter "search_path"".
        let schemas: [String]?
        let demotesCatalog: Bool
        var description: String { value.debugDescription }
    }

    static let searchPaths: [SearchPath] = [
        SearchPath(value: "evil, pg_catalog", schemas: ["evil", "pg_catalog"], demotesCatalog: true),
        SearchPath(value: "evil,\tpg_catalog", schemas: ["evil", "pg_catalog"], demotesCatalog: true),
        SearchPath(value: "evil,\u{0C}pg_catalog", schemas: ["evil", "pg_catalog"], demotesCatalog: true),
        SearchPath(value: "evil,\rpg_catalog", schemas: ["evil", "pg_catalog"], demotesCatalog: true),
        // \v is not scanner_isspace(): the name is "\vpg_catalog", pg_catalog stays first.
        SearchPath(value: "evil,\u{0B}pg_catalog", schemas: ["evil", "\u{0B}pg_catalog"], demotesCatalog: false),
        SearchPath(value: "evil,PG_CATALOG", schemas: ["evil", "pg_catalog"], demotesCatalog: true),
        SearchPath(value: "evil,\"PG_CATALOG\"", schemas: ["evil", "PG_CATALOG"], demotesCatalog: false),
        SearchPath(value: "evil,\"pg_catalog\"", schemas: ["evil", "pg_catalog"], demotesCatalog: true),
        SearchPath(value: " evil , pg_catalog ", schemas: ["evil", "pg_catalog"], demotesCatalog: true),
        SearchPath(value: "evil,,pg_catalog", schemas: nil, demotesCatalog: true),
        SearchPath(value: "\"evil,pg_catalog\"", schemas: ["evil,pg_catalog"], demotesCatalog: false),
        SearchPath(value: "evil pg_catalog", schemas: nil, demotesCatalog: true),
        SearchPath(value: "pg_catalog,evil", schemas: ["pg_catalog", "evil"], demotesCatalog: false),
        SearchPath(value: "Evil,pg_catalog", schemas: ["evil", "pg_catalog"], demotesCatalog: true),
        SearchPath(value: "\"Evil\",pg_catalog", schemas: ["Evil", "pg_catalog"], demotesCatalog: true),
        SearchPath(value: "evil,\"pg\"\"catalog\"", schemas: ["evil", "pg\"catalog"], demotesCatalog: false),
        SearchPath(value: "evil,", schemas: nil, demotesCatalog: true),
        SearchPath(value: "", schemas: [], demotesCatalog: false),
    ]

    @Test(arguments: searchPaths)
    func searchPathIsReadAsPostgreSQLReadsIt(_ path: SearchPath) {
        #expect(SettingPolicy.splitIdentifierString(path.value) == path.schemas)
        // An invalid list is refused too (PostgreSQL would refuse it anyway).
        #expect((SettingPolicy.refusal(name: "search_path", value: path.value) != nil) == path.demotesCatalog)
    }

    @Test func nonASCIISettingNamesCountAsProtected() {
        #expect(SettingPolicy.isProtected("r\u{F4}le"))
        #expect(SettingPolicy.isProtected("ROLE"))
        #expect(!SettingPolicy.isProtected("work_mem"))
    }
}
