#if canImport(Glibc)
import Glibc
#endif

/// A compiled POSIX extended regular expression (Glibc regcomp with REG_EXTENDED).
///
/// PostgreSQL compiles pg_hba.conf / pg_ident.conf regular expressions with its own
/// "advanced" (ARE) engine in the C collation (hba.c regcomp_auth_token). POSIX ERE is an
/// approximation; known differences:
/// - ARE escapes such as `\d`, `\w`, `\s`, `\m`, `\y`, `(?:...)`, lookahead and
///   non-greedy quantifiers (`*?`) are not ERE; glibc treats some (`\w`, `\s`) as GNU
///   extensions and rejects or misreads the rest.
/// - Inside bracket expressions ARE treats `\` as an escape, ERE as a literal.
/// - Error texts from regerror differ from PostgreSQL's pg_regerror texts.
/// - Glibc matches bytes of UTF-8 text in the process locale (the C locale unless the
///   program calls setlocale), PostgreSQL matches characters in the C collation.
/// Both search (the pattern is not implicitly anchored) and report leftmost-longest
/// submatches for ERE-compatible patterns.
public final class PosixRegex: @unchecked Sendable, Equatable {
    // Immutable after init; glibc's regexec is safe to call concurrently on one regex_t.
    private let compiled: UnsafeMutablePointer<regex_t>
    public let pattern: String

    /// Compiles `pattern`; the error is regerror's text.
    public static func compile(_ pattern: String) -> Result<PosixRegex, RegexCompileError> {
        let storage = UnsafeMutablePointer<regex_t>.allocate(capacity: 1)
        storage.initialize(to: regex_t())
        let status = regcomp(storage, pattern, REG_EXTENDED)
        if status != 0 {
            var buffer = [CChar](repeating: 0, count: 256)
            regerror(status, storage, &buffer, buffer.count)
            storage.deallocate()
            let text = String(decoding: buffer.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
            return .failure(RegexCompileError(message: text))
        }
        return .success(PosixRegex(compiled: storage, pattern: pattern))
    }

    private init(compiled: UnsafeMutablePointer<regex_t>, pattern: String) {
        self.compiled = compiled
        self.pattern = pattern
    }

    deinit {
        regfree(compiled)
        compiled.deallocate()
    }

    /// nil when there is no match; otherwise the whole match and `groups` submatches as
    /// UTF-8 byte ranges of `subject` (nil for a group that did not participate).
    public func match(_ subject: String, groups: Int = 0) -> [Range<Int>?]? {
        var matches = [regmatch_t](repeating: regmatch_t(), count: groups + 1)
        let status = regexec(compiled, subject, matches.count, &matches, 0)
        guard status == 0 else { return nil }
        return matches.map { $0.rm_so < 0 ? nil : Int($0.rm_so)..<Int($0.rm_eo) }
    }

    public static func == (lhs: PosixRegex, rhs: PosixRegex) -> Bool {
        lhs.pattern == rhs.pattern
    }
}

public struct RegexCompileError: Error, Sendable, Equatable {
    public var message: String
}
