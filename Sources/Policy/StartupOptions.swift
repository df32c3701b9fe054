/// The `options` startup parameter decoded exactly as a PostgreSQL 15 backend decodes it
/// (docs 55.2.1 "Start-up", 20.1.4 "Parameter Interaction via the Shell").
///
/// The backend hands the value to `pg_split_opts` (src/backend/utils/init/postinit.c), which
/// splits it into words at runs of `isspace()` bytes — in the C locale space, `\t`, `\n`, `\v`,
/// `\f`, `\r` — where a backslash takes the next byte literally (a trailing backslash is
/// dropped), and then to `process_postgres_switches` (src/backend/tcop/postgres.c), which runs
/// `getopt` over `"B:bc:C:D:d:EeFf:h:ijk:lN:nOPp:r:S:sTt:v:W:-:"`: switches may be clustered
/// (`-ecrole=x` is `-e` then `-c role=x`), a switch's argument is the rest of its word or else the
/// next word, `--name=value` is switch `-` with argument `name=value`, and a lone `--` ends the
/// switches. `-c` and `--` arguments go through `ParseLongOption` (src/backend/utils/misc/guc.c):
/// the name is everything before the first `=`, with every `-` turned into `_`.
///
/// Every word that is not a switch is an error for the backend ("invalid command-line argument
/// for server process"), as is an unknown switch or a missing argument.
public enum StartupOptions {
    /// One decoded switch.
    public enum Item: Equatable, Sendable {
        /// `-c name=value` or `--name=value` (`switchCharacter` is `c` or `-`).
        case setting(name: String, value: String, switchCharacter: Character)
        /// Any other switch of the backend's option string, with its argument if it takes one.
        case flag(Character, argument: String?)
    }

    /// Why the backend would refuse the value, as PostgreSQL words it.
    public struct DecodingError: Error, Equatable, Sendable {
        public let sqlState: String
        public let message: String
    }

    /// getopt's option string in process_postgres_switches (PostgreSQL 15).
    static let switchesWithArgument: Set<UInt8> = Set("BcCDdfhkNprStvW-".utf8)
    static let switchesWithoutArgument: Set<UInt8> = Set("bEeFijlnOPsT".utf8)

    /// `isspace()` in the C locale (the backend splits bytes, not characters).
    static func isSpace(_ byte: UInt8) -> Bool {
        byte == 0x20 || (byte >= 0x09 && byte <= 0x0D)
    }

    /// pg_split_opts: the words of `options`, byte for byte.
    public static func split(_ options: [UInt8]) -> [[UInt8]] {
        var words: [[UInt8]] = []
        var index = 0
        while index < options.count {
            while index < options.count, isSpace(options[index]) { index += 1 }
            if index == options.count { break }
            var word: [UInt8] = []
            var lastWasEscape = false
            while index < options.count {
                let byte = options[index]
                if isSpace(byte) && !lastWasEscape { break }
                if !lastWasEscape && byte == UInt8(ascii: "\\") {
                    lastWasEscape = true
                } else {
                    lastWasEscape = false
                    word.append(byte)
                }
                index += 1
            }
            words.append(word)
        }
        return words
    }

    /// The switches of `options` in the order the backend applies them, or the error the
    /// backend would end the session with.
    public static func decode(_ options: String) -> Result<[Item], DecodingError> {
        let words = split(Array(options.utf8))
        var items: [Item] = []
        var wordIndex = 0
        while wordIndex < words.count {
            let word = words[wordIndex]
            // "--" ends the switches; whatever follows is a non-switch argument.
            if word == Array("--".utf8) {
                if wordIndex + 1 < words.count { return .failure(invalidArgument(words[wordIndex + 1])) }
                break
            }
            // A word not starting with '-', and "-" itself, are not switches.
            guard word.count >= 2, word[0] == UInt8(ascii: "-") else { return .failure(invalidArgument(word)) }
            var position = 1
            while position < word.count {
                let switchByte = word[position]
                position += 1
                if switchesWithoutArgument.contains(switchByte) {
                    items.append(.flag(Character(Unicode.Scalar(switchByte)), argument: nil))
                    continue
                }
                guard switchesWithArgument.contains(switchByte) else { return .failure(invalidArgument(word)) }
                let argument: [UInt8]
                if position < word.count {
                    argument = Array(word[position...])
                } else if wordIndex + 1 < words.count {
                    wordIndex += 1
                    argument = words[wordIndex]
                } else {
                    return .failure(invalidArgument(word))
                }
                position = word.count
                let switchCharacter = Character(Unicode.Scalar(switchByte))
                if switchByte == UInt8(ascii: "c") || switchByte == UInt8(ascii: "-") {
                    switch parseLongOption(argument, switchCharacter: switchCharacter) {
                    case .success(let item): items.append(item)
                    case .failure(let error): return .failure(error)
                    }
                } else {
                    items.append(.flag(switchCharacter, argument: string(argument)))
                }
            }
            wordIndex += 1
        }
        return .success(items)
    }

    /// ParseLongOption and the "requires a value" check of process_postgres_switches.
    static func parseLongOption(_ argument: [UInt8], switchCharacter: Character) -> Result<Item, DecodingError> {
        guard let equals = argument.firstIndex(of: UInt8(ascii: "=")) else {
            let text = string(argument)
            let message = switchCharacter == "-" ? "--\(text) requires a value" : "-c \(text) requires a value"
            return .failure(DecodingError(sqlState: "42601", message: message))
        }
        let name = argument[..<equals].map { $0 == UInt8(ascii: "-") ? UInt8(ascii: "_") : $0 }
        let value = argument[(equals + 1)...]
        return .success(.setting(name: string(name), value: string(value), switchCharacter: switchCharacter))
    }

    static func invalidArgument(_ word: [UInt8]) -> DecodingError {
        DecodingError(sqlState: "42601", message: "invalid command-line argument for server process: \(string(word))")
    }

    /// Words are split at ASCII bytes only, so they stay valid UTF-8 when `options` was.
    static func string<Bytes: Collection>(_ bytes: Bytes) -> String where Bytes.Element == UInt8 {
        String(decoding: bytes, as: UTF8.self)
    }
}
