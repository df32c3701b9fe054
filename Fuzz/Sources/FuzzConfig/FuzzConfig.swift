import Config
import FuzzSupport

/// The configuration loader: the INI syntax, every setting's value parser (durations, sizes,
/// booleans, octal modes, listen addresses, verifiers), the `[databases]` / `[identities]`
/// connection strings, and the checks across sections — on the input as a whole file, as
/// `portcullis` reads it at start and on reload. Each line is also given to the public
/// connection-string parser on its own (libpq keyword=value syntax with quoting).
///
/// Property, besides not crashing: every error names a line of the file (or 0, the whole file).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzConfig(_ data: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    let input = FuzzInput(data, count)
    let text = input.text
    _ = outcome(text)
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
        let lines = text.utf8.reduce(1) { $1 == UInt8(ascii: "\n") ? $0 + 1 : $0 }
        for problem in error.errors {
            fuzzCheck((0...lines).contains(problem.line), "error on line \(problem.line) of \(lines): \(problem)")
        }
        return error.errors.map(\.description)
    }
}
