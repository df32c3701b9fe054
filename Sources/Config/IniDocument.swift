/// The configuration file split into sections and `key = value` entries, before any key is
/// interpreted. Syntax follows pgbouncer.ini: `[section]` headers, `;` or `#` comments (a whole
/// line, or after whitespace), and values that may be 'single quoted' with '' for a quote.
/// In [databases] and [identities] a name may be "double quoted" with "" for a quote, as
/// PostgreSQL quotes identifiers and pg_hba.conf quotes names.
struct IniDocument {
    struct Entry {
        var key: String
        var value: String
        var line: Int
        /// The key as written (keys are compared lower-cased, but `schedule.<database>` names a
        /// database, whose name is case-sensitive).
        var writtenKey: String? = nil
    }

    struct Section {
        var name: String
        var line: Int
        var entries: [Entry]
    }

    var sections: [Section] = []
}

/// A lexical problem on one line.
struct IniSyntaxError {
    var line: Int
    var message: String
}

enum IniParser {
    /// Splits `text` into sections. In sections named in `rawValueSections` values are
    /// connection strings with their own quoting (libpq's), so the remainder of the line is
    /// kept verbatim, comments included, for `ConnectionString` to tokenise.
    static func parse(_ text: String, rawValueSections: Set<String>) -> (IniDocument, [IniSyntaxError]) {
        var document = IniDocument()
        var errors: [IniSyntaxError] = []
        var reportedEntryOutsideSection = false
        // Split on bytes: "\r\n" is a single Character in Swift and would not split on "\n".
        let lines = text.utf8.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false)
        for (index, bytes) in lines.enumerated() {
            let lineNumber = index + 1
            var characters = Array(String(decoding: bytes, as: UTF8.self))
            if characters.last == "\r" { characters.removeLast() }
            let line = trimmed(characters[...])
            guard let first = line.first, first != ";", first != "#" else { continue }

            if first == "[" {
                do {
                    let name = try sectionName(line)
                    document.sections.append(.init(name: name.lowercased(), line: lineNumber, entries: []))
                } catch {
                    errors.append(IniSyntaxError(line: lineNumber, message: error.message))
                }
                continue
            }

            // A double-quoted name ("..." with "" for a quote) may hold what an unquoted
            // key cannot: "=", blanks at either end, a leading "#" or ";" or '"'.
            if first == "\"" {
                guard let sectionIndex = document.sections.indices.last,
                      rawValueSections.contains(document.sections[sectionIndex].name) else {
                    errors.append(IniSyntaxError(
                        line: lineNumber, message: "syntax error: quoted names are allowed only in "
                            + rawValueSections.sorted().map { "[\($0)]" }.joined(separator: " and ")))
                    continue
                }
                do {
                    let (key, rest) = try quotedName(line)
                    document.sections[sectionIndex].entries.append(.init(key: key, value: String(rest), line: lineNumber))
                } catch {
                    errors.append(IniSyntaxError(line: lineNumber, message: error.message))
                }
                continue
            }

            guard let equals = line.firstIndex(of: "=") else {
                errors.append(IniSyntaxError(
                    line: lineNumber, message: "syntax error: expected \"key = value\" or \"[section]\""))
                continue
            }
            let key = String(trimmed(line[line.startIndex..<equals]))
            guard !key.isEmpty else {
                errors.append(IniSyntaxError(line: lineNumber, message: "syntax error: missing key before \"=\""))
                continue
            }
            guard let sectionIndex = document.sections.indices.last else {
                if !reportedEntryOutsideSection {
                    errors.append(IniSyntaxError(
                        line: lineNumber,
                        message: "\"\(key)\" appears before any [section] header; settings belong in [portcullis]"))
                    reportedEntryOutsideSection = true
                }
                continue
            }
            let rest = trimmed(line[(equals + 1)...])
            if rawValueSections.contains(document.sections[sectionIndex].name) {
                document.sections[sectionIndex].entries.append(.init(key: key, value: String(rest), line: lineNumber))
                continue
            }
            do {
                let value = try settingValue(rest)
                document.sections[sectionIndex].entries.append(
                    .init(key: key.lowercased(), value: value, line: lineNumber, writtenKey: key))
            } catch {
                errors.append(IniSyntaxError(line: lineNumber, message: "\(key.lowercased()): \(error.message)"))
            }
        }
        return (document, errors)
    }

    private static func sectionName(_ line: ArraySlice<Character>) throws(SettingError) -> String {
        guard let close = line.firstIndex(of: "]") else {
            throw SettingError("syntax error: section header lacks a closing \"]\"")
        }
        let after = trimmed(line[(close + 1)...])
        if let next = after.first, next != ";", next != "#" {
            throw SettingError("syntax error: unexpected text after section header")
        }
        let name = trimmed(line[(line.startIndex + 1)..<close])
        guard !name.isEmpty else { throw SettingError("syntax error: empty section name") }
        return String(name)
    }

    /// `"name" = rest`: the name between double quotes ("" is one quote), and the trimmed
    /// text after the "=".
    static func quotedName(_ line: ArraySlice<Character>) throws(SettingError) -> (String, ArraySlice<Character>) {
        var name = ""
        var index = line.startIndex + 1
        while true {
            guard index < line.endIndex else { throw SettingError("syntax error: unterminated quoted name") }
            let character = line[index]
            index += 1
            if character == "\"" {
                if index < line.endIndex, line[index] == "\"" {
                    name.append("\"")
                    index += 1
                    continue
                }
                break
            }
            name.append(character)
        }
        guard !name.isEmpty else { throw SettingError("syntax error: empty quoted name") }
        let after = trimmed(line[index...])
        guard after.first == "=" else { throw SettingError("syntax error: expected \"=\" after quoted name \"\(name)\"") }
        return (name, trimmed(after.dropFirst()))
    }

    /// A quoted value keeps everything between the quotes ('' is one quote); an unquoted value
    /// ends at a comment character that starts the value or follows whitespace.
    private static func settingValue(_ text: ArraySlice<Character>) throws(SettingError) -> String {
        guard text.first == "'" else {
            var end = text.endIndex
            var index = text.startIndex
            while index < text.endIndex {
                let character = text[index]
                if character == ";" || character == "#",
                    index == text.startIndex || isWhitespace(text[index - 1])
                {
                    end = index
                    break
                }
                index += 1
            }
            return String(trimmed(text[text.startIndex..<end]))
        }
        var value = ""
        var index = text.startIndex + 1
        while true {
            guard index < text.endIndex else {
                throw SettingError("unterminated quoted value")
            }
            let character = text[index]
            index += 1
            if character == "'" {
                if index < text.endIndex, text[index] == "'" {
                    value.append("'")
                    index += 1
                    continue
                }
                break
            }
            value.append(character)
        }
        let after = trimmed(text[index...])
        if let next = after.first, next != ";", next != "#" {
            throw SettingError("unexpected text after quoted value")
        }
        return value
    }

    static func isWhitespace(_ character: Character) -> Bool {
        character == " " || character == "\t"
    }

    static func trimmed(_ text: ArraySlice<Character>) -> ArraySlice<Character> {
        var slice = text
        while let first = slice.first, isWhitespace(first) { slice.removeFirst() }
        while let last = slice.last, isWhitespace(last) { slice.removeLast() }
        return slice
    }
}
