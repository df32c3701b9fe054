#if canImport(Glibc)
import Glibc
#endif

/// A regular expression of pg_hba.conf / pg_ident.conf, compiled with glibc regcomp
/// (REG_EXTENDED) after `AdvancedRegexTranslation`.
///
/// PostgreSQL compiles these with its own "advanced" (ARE) engine in the C collation
/// (hba.c regcomp_auth_token). The translation maps the common ARE escapes to ERE and refuses
/// the ARE constructs ERE would misread; remaining differences:
/// - Counts above 255 and patterns that expand too far are refused before regcomp, as
///   PostgreSQL's compiler refuses them (`RegexExpansionBound`).
/// - Error texts from regerror differ from PostgreSQL's pg_regerror texts.
/// - ARE constructs refused by the translation are load errors here, valid in PostgreSQL.
/// - Glibc matches bytes of UTF-8 text in the process locale (the C locale unless the
///   program calls setlocale), PostgreSQL matches characters in the C collation.
/// Both search (the pattern is not implicitly anchored) and report leftmost-longest
/// submatches for ERE-compatible patterns.
public final class PosixRegex: @unchecked Sendable, Equatable {
    // Immutable after init; glibc's regexec is safe to call concurrently on one regex_t.
    private let compiled: UnsafeMutablePointer<regex_t>
    public let pattern: String

    /// Compiles `pattern` (ARE syntax as far as translated); the error is the translation's
    /// refusal or regerror's text.
    public static func compile(_ pattern: String) -> Result<PosixRegex, RegexCompileError> {
        let extended: String
        switch AdvancedRegexTranslation.translate(pattern) {
        case .success(let translated): extended = translated
        case .failure(let error): return .failure(error)
        }
        if let refusal = RegexExpansionBound.refusal(extended) {
            return .failure(refusal)
        }
        let storage = UnsafeMutablePointer<regex_t>.allocate(capacity: 1)
        storage.initialize(to: regex_t())
        let status = regcomp(storage, extended, REG_EXTENDED)
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
