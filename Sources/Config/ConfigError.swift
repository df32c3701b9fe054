/// One problem found in a configuration file (portcullis.ini, pg_hba.conf, pg_ident.conf),
/// located like a compiler diagnostic (`file:line: message`) so editors can jump to it.
///
/// `line` is 1-based; `0` means the problem concerns the file as a whole (it could not be
/// read, or a required section is missing), and `description` then omits the line.
public struct ConfigError: Error, Sendable, Equatable, CustomStringConvertible {
    public var file: String
    public var line: Int
    public var message: String

    public init(file: String, line: Int, message: String) {
        self.file = file
        self.line = line
        self.message = message
    }

    public var description: String {
        line > 0 ? "\(file):\(line): \(message)" : "\(file): \(message)"
    }
}

/// Every problem found while loading a configuration file. The loaders keep going after the
/// first problem so an operator can fix the whole file in one pass (for pg_hba.conf and
/// pg_ident.conf as load_hba() / load_ident() do; any error refuses the file).
public struct ConfigErrors: Error, Sendable, Equatable, CustomStringConvertible {
    public var errors: [ConfigError]

    public init(errors: [ConfigError]) {
        self.errors = errors
    }

    /// One error per line, in file order.
    public var description: String {
        errors.map(\.description).joined(separator: "\n")
    }
}

/// A syntax error in a libpq keyword/value connection string. The message names keywords
/// but never echoes values, because the value may be a password.
public struct ConnectionStringError: Error, Sendable, Equatable, CustomStringConvertible {
    public var message: String

    public init(message: String) {
        self.message = message
    }

    public var description: String { message }
}
