/// libpq keyword/value connection strings (PostgreSQL 34.1.1.1 Keyword/Value Connection
/// Strings): `keyword = value` pairs separated by whitespace; a value containing whitespace is
/// single-quoted; inside or outside quotes a backslash escapes the next character (`\'`, `\\`).
public enum ConnectionString {
    /// Splits `s` into pairs in written order. Keywords are not checked here, and repeated
    /// keywords are all returned, so callers can reject both with the line they came from.
    public static func parse(_ s: String) throws(ConnectionStringError) -> [(key: String, value: String)] {
        try parse(s, allowingComments: false)
    }

    /// With `allowingComments`, a `;` or `#` where a keyword would start ends the string, so a
    /// configuration line may carry a trailing comment while `#` inside a value still works.
    static func parse(_ s: String, allowingComments: Bool) throws(ConnectionStringError)
        -> [(key: String, value: String)]
    {
        let characters = Array(s)
        var pairs: [(key: String, value: String)] = []
        var index = 0

        func skipWhitespace() {
            while index < characters.count, isWhitespace(characters[index]) { index += 1 }
        }

        while true {
            skipWhitespace()
            guard index < characters.count else { break }
            if allowingComments, characters[index] == ";" || characters[index] == "#" { break }

            let keywordStart = index
            while index < characters.count, characters[index] != "=", !isWhitespace(characters[index]) {
                index += 1
            }
            let keyword = String(characters[keywordStart..<index])
            skipWhitespace()
            guard index < characters.count, characters[index] == "=" else {
                // After a secret's value the word is likely the rest of it (an unquoted value
                // with white space; found in review: part of a password reached the log and the
                // audit stream through a reload's error): not repeated then.
                if let secret = pairs.last(where: { $0.key.lowercased().contains("password") || $0.key.lowercased().contains("secret") }) {
                    throw ConnectionStringError(
                        message: "missing \"=\" after the value of \"\(secret.key)\" or a later one in connection string (a value with white space must be quoted)")
                }
                throw ConnectionStringError(message: "missing \"=\" after \"\(keyword)\" in connection string")
            }
            guard !keyword.isEmpty else {
                throw ConnectionStringError(message: "missing keyword before \"=\" in connection string")
            }
            index += 1
            // libpq skips whitespace after "=", so `host= x` sets host to "x".
            skipWhitespace()

            var value = ""
            if index < characters.count, characters[index] == "'" {
                index += 1
                var terminated = false
                while index < characters.count {
                    let character = characters[index]
                    index += 1
                    if character == "\\" {
                        guard index < characters.count else { break }
                        value.append(characters[index])
                        index += 1
                    } else if character == "'" {
                        terminated = true
                        break
                    } else {
                        value.append(character)
                    }
                }
                guard terminated else {
                    throw ConnectionStringError(
                        message: "unterminated quoted value for \"\(keyword)\" in connection string")
                }
            } else {
                while index < characters.count, !isWhitespace(characters[index]) {
                    let character = characters[index]
                    index += 1
                    if character == "\\" {
                        guard index < characters.count else {
                            throw ConnectionStringError(
                                message: "value for \"\(keyword)\" ends with a lone backslash in connection string")
                        }
                        value.append(characters[index])
                        index += 1
                    } else {
                        value.append(character)
                    }
                }
            }
            pairs.append((key: keyword, value: value))
        }
        return pairs
    }

    /// libpq uses isspace().
    private static func isWhitespace(_ character: Character) -> Bool {
        character == " " || character == "\t" || character == "\n" || character == "\r"
            || character == "\u{0B}" || character == "\u{0C}"
    }
}
