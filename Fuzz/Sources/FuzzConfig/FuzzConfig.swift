import Config
import FuzzSupport

/// The configuration loader: the INI syntax, every setting's value parser (durations, sizes,
/// booleans, octal modes, listen addresses, verifiers), the `[databases]` / `[identities]`
/// connection strings, and the checks across sections — on the input as a whole file, as
/// `portcullis` reads it at start and on reload. Each line is also given to the public
/// connection-string parser on its own (libpq keyword=value syntax with quoting).
///
/// Property: no crash, and a parse is deterministic (the same errors, in the same order).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzConfig(_ data: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    let input = FuzzInput(data, count)
    let text = input.text
    let first = outcome(text)
    fuzzCheck(first == outcome(text), "configuration parse is not deterministic")
    for line in text.split(separator: "\n", omittingEmptySubsequences: true).prefix(32) {
        _ = try? ConnectionString.parse(String(line))
    }
    return 0
}

/// The errors as text, or the database and identity names of a valid configuration.
private func outcome(_ text: String) -> [String] {
    do {
        let config = try ConfigLoader.parse(text, fileName: "/etc/portcullis/portcullis.ini")
        return ["ok"] + config.databases.keys.sorted() + config.identities.keys.sorted()
    } catch {
        return error.errors.map(\.description)
    }
}
