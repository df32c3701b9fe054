/// CommandComplete tags (protocol 55.7) of statements that can change what a catalog snapshot
/// records: views, rules, policies, functions, foreign tables, ownership and privileges. `DO`
/// and `CALL` run code that may do any of that (found in review: a domain created inside a DO
/// block went unnoticed until the periodic refresh); DDL inside a function a SELECT calls is
/// seen only at the periodic refresh (catalog_refresh_interval).
package enum CatalogChangeTag {
    package static let prefixes: [[UInt8]] = ["CREATE", "ALTER", "DROP", "COMMENT", "GRANT", "REVOKE",
                                      "SECURITY LABEL", "IMPORT FOREIGN SCHEMA", "DO\0", "CALL\0"].map { Array($0.utf8) }

    /// `payload`: the CommandComplete payload (the tag, NUL-terminated).
    package static func changesCatalog(_ payload: some Collection<UInt8>) -> Bool {
        prefixes.contains { payload.starts(with: $0) }
    }
}
