import Config

/// One valid pg_ident.conf line: MAPNAME SYSTEM-USERNAME PG-USERNAME.
public struct IdentMapLine: Sendable, Equatable {
    public var fileName: String
    public var lineNumber: Int
    public var mapName: String
    /// A regular expression when it starts with "/".
    public var systemUser: HbaNamePattern
    /// `all`, `+group` or "/regex" (PostgreSQL 16+), else a name in which `\1` is replaced
    /// by the first subexpression of a regular-expression system user.
    public var databaseUser: HbaNamePattern
}

/// The outcome of check_usermap().
public enum IdentMapResult: Sendable, Equatable {
    case matched(IdentMapLine?)
    case notMatched
    /// A match attempt failed in a way PostgreSQL logs and treats as "not authorized".
    case error(String)
}

/// A loaded pg_ident.conf (docs 21.2 "User Name Maps"; src/backend/libpq/hba.c load_ident,
/// parse_ident_line, check_ident_usermap, check_usermap), PostgreSQL 16–17 semantics:
/// the PG-user column understands `all`, `+group` and "/regex" (PostgreSQL 15 compared it
/// literally), and include directives work as in pg_hba.conf. Regular expressions are POSIX
/// ERE, not PostgreSQL's ARE (see `PosixRegex`).
public struct IdentMaps: Sendable, Equatable {
    public var lines: [IdentMapLine]

    public static func load(path: String, files: some ConfigFileSource) -> Result<IdentMaps, ConfigErrors> {
        AuthFile.load(path: path, files: files) { parse(text: $0, fileName: path, files: files) }
    }

    /// An empty file is valid (no maps).
    public static func parse(text: String, fileName: String, files: some ConfigFileSource) -> Result<IdentMaps, ConfigErrors> {
        let (lines, errors) = AuthFile.parseLines(text: text, fileName: fileName, files: files, parseLine)
        return errors.isEmpty ? .success(IdentMaps(lines: lines)) : .failure(ConfigErrors(errors: errors))
    }

    /// parse_ident_line(): fields beyond the third are ignored, as in PostgreSQL.
    static func parseLine(_ line: TokenizedLine) -> Result<IdentMapLine, LineError> {
        var tokens: [AuthToken] = []
        for index in 0..<3 {
            guard index < line.fields.count else { return .failure("missing entry at end of line") }
            let field = line.fields[index]
            if field.count > 1 { return .failure("multiple values in ident field") }
            tokens.append(field[0])
        }
        let systemUser: HbaNamePattern
        switch HbaLineParser.compileIfRegex(tokens[1]) {
        case .success(let pattern): systemUser = pattern
        case .failure(let error): return .failure(error)
        }
        let databaseUser: HbaNamePattern
        switch HbaLineParser.compileIfRegex(tokens[2]) {
        case .success(let pattern): databaseUser = pattern
        case .failure(let error): return .failure(error)
        }
        return .success(IdentMapLine(fileName: line.fileName, lineNumber: line.lineNumber, mapName: tokens[0].text,
                                     systemUser: systemUser, databaseUser: databaseUser))
    }

    /// Whether `systemUser` may connect as `databaseUser` under map `map`.
    /// `isMember(user, role)` is as in `HbaEnvironment` (for `+group` on the PG-user side).
    public func check(map: String, systemUser: String, databaseUser: String, caseInsensitive: Bool = false,
                      isMember: (String, String) -> Bool = { _, _ in false }) -> Bool {
        switch evaluate(map: map, systemUser: systemUser, databaseUser: databaseUser,
                        caseInsensitive: caseInsensitive, isMember: isMember) {
        case .matched: true
        case .notMatched, .error: false
        }
    }

    /// check_usermap(). An empty map name means no map: the names must be equal.
    public func evaluate(map: String, systemUser: String, databaseUser: String, caseInsensitive: Bool = false,
                         isMember: (String, String) -> Bool = { _, _ in false }) -> IdentMapResult {
        if map.isEmpty {
            let equal = caseInsensitive
                ? Array(systemUser.utf8).map(asciiLower) == Array(databaseUser.utf8).map(asciiLower)
                : sameBytes(systemUser, databaseUser)
            return equal ? .matched(nil) : .notMatched
        }
        for line in lines where sameBytes(line.mapName, map) {
            switch Self.checkLine(line, systemUser: systemUser, databaseUser: databaseUser,
                                  caseInsensitive: caseInsensitive, isMember: isMember) {
            case .matched: return .matched(line)
            case .error(let message): return .error(message)
            case .notMatched: continue
            }
        }
        return .notMatched
    }

    /// check_ident_usermap() for one line of the right map.
    static func checkLine(_ line: IdentMapLine, systemUser: String, databaseUser: String, caseInsensitive: Bool,
                          isMember: (String, String) -> Bool) -> IdentMapResult {
        var pgUser = line.databaseUser
        if let regex = line.systemUser.regex {
            guard let matches = regex.match(systemUser, groups: 1) else { return .notMatched }
            let target = pgUser.token
            let isSpecial = target.isMembershipCheck || pgUser.regex != nil
            let template = Array(target.text.utf8)
            if !isSpecial, let offset = firstBackreference(in: template) {
                guard let group = matches[1] else {
                    return .error("regular expression \"\(regex.pattern)\" has no subexpressions as requested by backreference in \"\(target.text)\"")
                }
                let subject = Array(systemUser.utf8)
                let expanded = Array(template[..<offset]) + Array(subject[group]) + Array(template[(offset + 2)...])
                // Quoted, so the substituted name is only ever compared literally.
                pgUser = HbaNamePattern(token: AuthToken(String(decoding: expanded, as: UTF8.self), quoted: true), regex: nil)
            }
        } else {
            let equal = caseInsensitive
                ? Array(line.systemUser.token.text.utf8).map(asciiLower) == Array(systemUser.utf8).map(asciiLower)
                : sameBytes(line.systemUser.token.text, systemUser)
            guard equal else { return .notMatched }
        }
        return RoleMatching.matches(pgUser, user: databaseUser, caseInsensitive: caseInsensitive, isMember: isMember)
            ? .matched(line) : .notMatched
    }

    private static func firstBackreference(in bytes: [UInt8]) -> Int? {
        guard bytes.count >= 2 else { return nil }
        for index in 0..<(bytes.count - 1) where bytes[index] == UInt8(ascii: "\\") && bytes[index + 1] == UInt8(ascii: "1") {
            return index
        }
        return nil
    }
}
