/// One problem found while loading pg_hba.conf or pg_ident.conf.
///
/// `message` uses PostgreSQL's wording (the `error` column of pg_hba_file_rules /
/// pg_ident_file_mappings) where PostgreSQL has one. `lineNumber` is 0 when the problem
/// concerns the file as a whole (it could not be opened, or has no entries).
public struct AccessConfigError: Sendable, Equatable, CustomStringConvertible {
    public var fileName: String
    public var lineNumber: Int
    public var message: String

    public init(fileName: String, lineNumber: Int, message: String) {
        self.fileName = fileName
        self.lineNumber = lineNumber
        self.message = message
    }

    /// "file:line: message", or "file: message" for whole-file problems.
    public var description: String {
        lineNumber > 0 ? "\(fileName):\(lineNumber): \(message)" : "\(fileName): \(message)"
    }
}

/// Every problem of a refused file. Like load_hba() / load_ident(), parsing goes on after
/// the first bad line so that all of them are reported, and any error refuses the file.
public struct AccessConfigErrors: Error, Sendable, Equatable, CustomStringConvertible {
    public var errors: [AccessConfigError]

    public init(_ errors: [AccessConfigError]) {
        self.errors = errors
    }

    /// One "file:line: message" per line.
    public var description: String {
        errors.map(\.description).joined(separator: "\n")
    }
}

/// The error text of one line, before it gets its file and line number.
struct LineError: Error, Equatable, ExpressibleByStringInterpolation {
    var message: String

    init(_ message: String) {
        self.message = message
    }

    init(stringLiteral value: String) {
        message = value
    }

    init(stringInterpolation: DefaultStringInterpolation) {
        message = String(stringInterpolation: stringInterpolation)
    }
}
