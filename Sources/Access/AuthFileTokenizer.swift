import Config
#if canImport(Glibc)
import Glibc
#endif

/// One token of an authentication file, with whether any part of it was double-quoted.
/// A quoted token is never a keyword: `"all"` is the role or database named all
/// (hba.c token_is_keyword).
public struct AuthToken: Sendable, Equatable, CustomStringConvertible {
    public var text: String
    public var isQuoted: Bool

    public init(_ text: String, quoted: Bool = false) {
        self.text = text
        self.isQuoted = quoted
    }

    func isKeyword(_ keyword: String) -> Bool { !isQuoted && text == keyword }

    /// An unquoted `+role` (hba.c token_is_member_check).
    var isMembershipCheck: Bool { !isQuoted && text.utf8.first == UInt8(ascii: "+") }

    public var description: String { isQuoted ? "\"\(text)\"" : text }
}

/// A logical line: fields, each a comma list of tokens (after `@file` expansion), or the
/// error that spoiled it. Lines pulled in by `include` carry their own file and line.
struct TokenizedLine: Sendable, Equatable {
    var fields: [[AuthToken]]
    var fileName: String
    var lineNumber: Int
    var error: String?
}

/// The tokenizer shared by pg_hba.conf and pg_ident.conf, as PostgreSQL 16/17
/// tokenize_auth_file() / next_field_expand() / next_token() do it (src/backend/libpq/hba.c,
/// docs 21.1 "The pg_hba.conf File"):
/// - blanks are space, tab and CR; fields are separated by blanks, tokens of a field by
///   commas; `#` outside quotes starts a comment;
/// - double quotes may surround any part of a token, `""` inside quotes is a literal quote;
/// - a backslash at the end of a line joins the next line (PostgreSQL 15+);
/// - an unquoted token `@name` is replaced by all tokens of file `name` (relative to the
///   including file's directory);
/// - a line of exactly two fields whose first token is `include`, `include_if_exists` or
///   `include_dir` inserts the lines of other files at that point (PostgreSQL 16+).
///
/// One guard PostgreSQL does not have: the nesting depth alone bounds how deep includes go,
/// not how wide, so a file that includes itself k times (or names `@itself` k times) expands
/// to k^10 copies — 4 such lines are a million. The tokenizer stops, with an error on the
/// line where it happened, once the files it opened (one per include or `@file`, repeats
/// counted) exceed `maxFilesOpened` or their text exceeds `maxBytesRead`; the whole file is
/// then refused like any other broken one. Real files stay far below both (a pg_hba.conf of
/// a thousand lines is about 100 kB).
struct AuthFileTokenizer<Source: ConfigFileSource> {
    let files: Source
    private(set) var filesOpened = 0
    private(set) var bytesRead = 0
    /// Set once a limit is passed: every tokenize() then returns at its next line.
    private(set) var isExhausted = false

    init(files: Source) {
        self.files = files
    }

    /// CONF_FILE_MAX_DEPTH in src/include/utils/conffiles.h.
    static var maxDepth: Int { 10 }
    static var maxFilesOpened: Int { 2_000 }
    static var maxBytesRead: Int { 4 << 20 }

    enum OpenFailure: Error {
        case message(String, errno: Int32?)
    }

    /// open_auth_file(): the nesting-depth guard and the read. (A directory given as a file
    /// is refused here with EISDIR; PostgreSQL opens it and then fails with "could not read
    /// file" on its line 1.)
    mutating func open(_ path: String, depth: Int) -> Result<String, OpenFailure> {
        // Attempts refused for depth count too: their error lines are what piles up.
        filesOpened += 1
        if filesOpened > Self.maxFilesOpened {
            return exhausted(path, "more than \(Self.maxFilesOpened) files opened")
        }
        if depth > Self.maxDepth {
            return .failure(.message("could not open file \"\(path)\": maximum nesting depth exceeded", errno: nil))
        }
        switch files.readFile(atPath: path) {
        case .success(let text):
            bytesRead += text.utf8.count
            if bytesRead > Self.maxBytesRead {
                return exhausted(path, "more than \(Self.maxBytesRead >> 20) MB read")
            }
            return .success(text)
        case .failure(let error):
            return .failure(.message("could not open file \"\(path)\": \(error.message)", errno: error.errno))
        }
    }

    private mutating func exhausted(_ path: String, _ what: String) -> Result<String, OpenFailure> {
        isExhausted = true
        return .failure(.message("could not open file \"\(path)\": the authentication file expands to \(what) "
                                 + "(does an include or @file reference repeat itself?)", errno: nil))
    }

    /// Tokenizes `text` (the contents of `fileName`) and appends its lines, with included
    /// files' lines spliced in, to `lines`.
    mutating func tokenize(text: String, fileName: String, depth: Int, into lines: inout [TokenizedLine]) {
        var physical = Array(text.utf8).split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false)
        if text.utf8.last == UInt8(ascii: "\n") { physical.removeLast() }
        var index = 0
        var lineNumber = 1
        while index < physical.count, !isExhausted {
            var buffer = stripLineBreaks(Array(physical[index]))
            index += 1
            var continuations = 0
            var lastBackslashLength = 0
            // The backslash must lie past the previous continuation point, so "\\" followed by
            // an empty line does not chain forever (same rule as PostgreSQL).
            while buffer.count > lastBackslashLength, buffer.last == UInt8(ascii: "\\") {
                buffer.removeLast()
                lastBackslashLength = buffer.count
                continuations += 1
                guard index < physical.count else { break }
                buffer = stripLineBreaks(buffer + physical[index])
                index += 1
            }
            defer { lineNumber += continuations + 1 }

            var error: String?
            var fields: [[AuthToken]] = []
            var position = 0
            while position < buffer.count, error == nil {
                let field = nextField(buffer, &position, fileName: fileName, depth: depth, error: &error)
                if !field.isEmpty { fields.append(field) }
            }
            if fields.isEmpty, error == nil { continue }

            if error == nil, fields.count == 2 {
                let directive = fields[0][0].text
                let target = fields[1][0].text
                switch directive {
                case "include", "include_if_exists":
                    error = includeFile(target, from: fileName, depth: depth + 1,
                                        missingOK: directive == "include_if_exists", into: &lines)
                    if error == nil { continue }
                case "include_dir":
                    error = includeDirectory(target, from: fileName, depth: depth + 1, into: &lines)
                    if error == nil { continue }
                default:
                    break
                }
            }
            lines.append(TokenizedLine(fields: fields, fileName: fileName, lineNumber: lineNumber, error: error))
        }
    }

    /// pg_strip_crlf: every trailing CR and LF.
    private func stripLineBreaks(_ bytes: [UInt8]) -> [UInt8] {
        var result = bytes
        while let last = result.last, last == UInt8(ascii: "\n") || last == UInt8(ascii: "\r") {
            result.removeLast()
        }
        return result
    }

    private static func isBlank(_ byte: UInt8) -> Bool {
        byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\t") || byte == UInt8(ascii: "\r")
    }

    struct RawToken {
        var bytes: [UInt8]
        var initialQuote: Bool
        var terminatingComma: Bool
    }

    /// next_token(): nil when the line (or the rest before a comment) holds no more tokens.
    func nextToken(_ line: [UInt8], _ position: inout Int) -> RawToken? {
        let quote = UInt8(ascii: "\"")
        while position < line.count, Self.isBlank(line[position]) || line[position] == UInt8(ascii: ",") {
            position += 1
        }
        var token = RawToken(bytes: [], initialQuote: false, terminatingComma: false)
        var inQuote = false
        var wasQuote = false
        var sawQuote = false
        while position < line.count {
            let byte = line[position]
            if Self.isBlank(byte), !inQuote { break }
            if byte == UInt8(ascii: "#"), !inQuote {
                position = line.count
                break
            }
            if byte == UInt8(ascii: ","), !inQuote {
                token.terminatingComma = true
                break
            }
            if byte != quote || wasQuote { token.bytes.append(byte) }
            wasQuote = inQuote && byte == quote ? !wasQuote : false
            if byte == quote {
                inQuote.toggle()
                sawQuote = true
                if token.bytes.isEmpty { token.initialQuote = true }
            }
            position += 1
        }
        return sawQuote || !token.bytes.isEmpty ? token : nil
    }

    /// next_field_expand(): one field's comma list, with `@file` references expanded.
    mutating func nextField(_ line: [UInt8], _ position: inout Int, fileName: String, depth: Int,
                   error: inout String?) -> [AuthToken] {
        var tokens: [AuthToken] = []
        while let raw = nextToken(line, &position) {
            if !raw.initialQuote, raw.bytes.count > 1, raw.bytes[0] == UInt8(ascii: "@") {
                let name = String(decoding: raw.bytes.dropFirst(), as: UTF8.self)
                expandFile(name, from: fileName, depth: depth + 1, into: &tokens, error: &error)
            } else {
                tokens.append(AuthToken(String(decoding: raw.bytes, as: UTF8.self), quoted: raw.initialQuote))
            }
            if !raw.terminatingComma || error != nil { break }
        }
        return tokens
    }

    /// tokenize_expand_file(): every token of every line of the file, flattened; the first
    /// line error of that file becomes the error of the referencing line. A missing file is
    /// reported with PostgreSQL 16's "could not open file ..." (PostgreSQL 15 said "could not
    /// open secondary authentication file "@name" as "path": ...").
    private mutating func expandFile(_ name: String, from outerFile: String, depth: Int,
                            into tokens: inout [AuthToken], error: inout String?) {
        let path = ConfigPath.absolute(name, relativeTo: outerFile)
        switch open(path, depth: depth) {
        case .failure(.message(let message, _)):
            error = message
        case .success(let text):
            var included: [TokenizedLine] = []
            tokenize(text: text, fileName: path, depth: depth, into: &included)
            for line in included {
                if let lineError = line.error {
                    error = lineError
                    return
                }
                tokens.append(contentsOf: line.fields.joined())
            }
        }
    }

    /// tokenize_include_file(): nil on success (or a skipped missing include_if_exists file).
    private mutating func includeFile(_ name: String, from outerFile: String, depth: Int, missingOK: Bool,
                             into lines: inout [TokenizedLine]) -> String? {
        let path = ConfigPath.absolute(name, relativeTo: outerFile)
        switch open(path, depth: depth) {
        case .failure(.message(let message, let errno)):
            if missingOK, errno == ENOENT { return nil }
            return message
        case .success(let text):
            tokenize(text: text, fileName: path, depth: depth, into: &lines)
            return nil
        }
    }

    /// `include_dir`: the directory's `*.conf` files (not starting with "."), in strcmp
    /// order, as GetConfFilesInDir() (src/backend/utils/misc/conffiles.c) lists them.
    /// Errors of several files are joined with newlines, as PostgreSQL does.
    private mutating func includeDirectory(_ name: String, from outerFile: String, depth: Int,
                                  into lines: inout [TokenizedLine]) -> String? {
        let directory = ConfigPath.absolute(name, relativeTo: outerFile)
        let entries: [DirectoryEntry]
        switch files.listDirectory(atPath: directory) {
        case .failure(let failure):
            return "could not open configuration directory \"\(directory)\": \(failure.message)"
        case .success(let listed):
            entries = listed
        }
        let names = entries
            .filter { entry in
                let bytes = Array(entry.name.utf8)
                return bytes.count >= 6 && bytes[0] != UInt8(ascii: ".") && entry.name.hasSuffix(".conf")
                    && !entry.isDirectory
            }
            .map { Array($0.name.utf8) }
            .sorted { $0.lexicographicallyPrecedes($1) }
            .map { ConfigPath.canonical(ConfigPath.join(directory, String(decoding: $0, as: UTF8.self))) }
        var errors: [String] = []
        for path in names {
            if let error = includeFile(path, from: outerFile, depth: depth, missingOK: false, into: &lines) {
                errors.append(error)
            }
        }
        return errors.isEmpty ? nil : errors.joined(separator: "\n")
    }
}

/// What pg_hba.conf and pg_ident.conf share (hba.c load_hba and load_ident both open the file,
/// tokenize it with its includes, and parse each line, collecting every error).
enum AuthFile {
    /// Reads `path` through `files`, then hands its text to `parse`; a file that cannot be read
    /// is one error on its line 0.
    static func load<Parsed>(path: String, files: some ConfigFileSource,
                             parse: (String) -> Result<Parsed, ConfigErrors>) -> Result<Parsed, ConfigErrors> {
        var tokenizer = AuthFileTokenizer(files: files)
        switch tokenizer.open(path, depth: 0) {
        case .failure(.message(let message, _)):
            return .failure(ConfigErrors(errors: [ConfigError(file: path, line: 0, message: message)]))
        case .success(let text):
            return parse(text)
        }
    }

    /// Every line of `text` (includes spliced in) through `parseLine`: the lines parsed, and an
    /// error for each line that was not, tokenizer errors included, in file order.
    static func parseLines<Line>(text: String, fileName: String, files: some ConfigFileSource,
                                 _ parseLine: (TokenizedLine) -> Result<Line, LineError>) -> (lines: [Line], errors: [ConfigError]) {
        var tokenized: [TokenizedLine] = []
        var tokenizer = AuthFileTokenizer(files: files)
        tokenizer.tokenize(text: text, fileName: fileName, depth: 0, into: &tokenized)
        var lines: [Line] = []
        var errors: [ConfigError] = []
        for line in tokenized {
            switch line.error.map({ .failure(LineError($0)) }) ?? parseLine(line) {
            case .success(let parsed): lines.append(parsed)
            case .failure(let error): errors.append(ConfigError(file: line.fileName, line: line.lineNumber, message: error.message))
            }
        }
        return (lines, errors)
    }
}
