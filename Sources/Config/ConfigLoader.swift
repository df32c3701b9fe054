import Glibc

/// Reads and validates a Portcullis configuration file (pgbouncer.ini-style INI; see
/// docs/CONFIG.md). Every problem is collected and reported together with its file and line.
/// Relative paths inside the file are kept as written, i.e. relative to the working directory.
public enum ConfigLoader {
    public static func load(path: String) throws(ConfigErrors) -> PortcullisConfig {
        let bytes: [UInt8]
        do {
            bytes = try readFile(path)
        } catch {
            throw ConfigErrors(errors: [ConfigError(file: path, line: 0, message: error.message)])
        }
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw ConfigErrors(errors: [ConfigError(file: path, line: 0, message: "file is not valid UTF-8")])
        }
        return try parse(text, fileName: path)
    }

    public static func parse(_ text: String, fileName: String) throws(ConfigErrors) -> PortcullisConfig {
        // Editors on some platforms start UTF-8 files with a byte order mark.
        let body = text.hasPrefix("\u{FEFF}") ? String(text.dropFirst()) : text
        let (document, syntaxErrors) = IniParser.parse(body, rawValueSections: ConfigBuilder.connectionStringSections)
        var builder = ConfigBuilder(fileName: fileName)
        for syntaxError in syntaxErrors {
            builder.report(line: syntaxError.line, syntaxError.message)
        }
        builder.apply(document)
        builder.checkRelationships()
        guard builder.errors.isEmpty else {
            // Stable sort: errors on one line keep the order they were found in.
            let ordered = builder.errors.enumerated().sorted {
                ($0.element.line, $0.offset) < ($1.element.line, $1.offset)
            }.map(\.element)
            throw ConfigErrors(errors: ordered)
        }
        return builder.config
    }

    private static func readFile(_ path: String) throws(SettingError) -> [UInt8] {
        switch FileSystemConfigFiles().readBytes(atPath: path) {
        case .success(let bytes):
            return bytes
        case .failure(let error):
            throw SettingError("could not \(error.duringOpen ? "open" : "read") configuration file: \(error.message)")
        }
    }
}

/// Accumulates settings and errors while walking an `IniDocument`.
struct ConfigBuilder {
    static let connectionStringSections: Set<String> = ["databases", "identities"]
    static let knownSections = ["portcullis", "tls", "databases", "identities", "backup"]

    let fileName: String
    var errors: [ConfigError] = []
    var config: PortcullisConfig
    /// Line of each section header (the first, if repeated).
    var sectionLines: [String: Int] = [:]
    /// Line of each key, by section then key.
    var keyLines: [String: [String: Int]] = [:]
    var sawDatabaseEntry = false

    init(fileName: String) {
        self.fileName = fileName
        config = PortcullisConfig(sourcePath: fileName)
    }

    mutating func report(line: Int, _ message: String) {
        errors.append(ConfigError(file: fileName, line: line, message: message))
    }

    func line(of key: String, in section: String) -> Int? {
        keyLines[section]?[key]
    }

    /// The best line for a problem about `key`: the key itself, else its section header, else
    /// the whole file (0).
    func lineForProblem(with key: String, in section: String) -> Int {
        line(of: key, in: section) ?? sectionLines[section] ?? 0
    }

    mutating func apply(_ document: IniDocument) {
        for section in document.sections {
            guard Self.knownSections.contains(section.name) else {
                let expected = Self.knownSections.map { "[\($0)]" }.joined(separator: ", ")
                report(line: section.line, "unknown section [\(section.name)]; expected one of \(expected)")
                continue
            }
            if let first = sectionLines[section.name] {
                report(line: section.line, "section [\(section.name)] already appeared on line \(first)")
            } else {
                sectionLines[section.name] = section.line
            }
            for entry in section.entries {
                if let first = keyLines[section.name]?[entry.key] {
                    report(line: entry.line,
                           "duplicate key \"\(entry.key)\" in [\(section.name)] (first set on line \(first))")
                    continue
                }
                keyLines[section.name, default: [:]][entry.key] = entry.line
                apply(entry, in: section.name)
            }
        }
    }

    private mutating func apply(_ entry: IniDocument.Entry, in section: String) {
        switch section {
        case "portcullis":
            applySetting(entry, section: section) { (builder, entry) throws(SettingError) in
                try builder.applyGeneral(entry)
            }
        case "tls":
            applySetting(entry, section: section) { (builder, entry) throws(SettingError) in
                try builder.applyTLS(entry)
            }
        case "databases":
            applyDatabase(entry)
        case "identities":
            applyIdentity(entry)
        case "backup":
            applySetting(entry, section: section) { (builder, entry) throws(SettingError) in
                try builder.applyBackup(entry)
            }
        default:
            preconditionFailure("apply(_:in:) called for unchecked section [\(section)]")
        }
    }

    /// Runs one setting's parser; `apply` returns false for a key the section does not have.
    private mutating func applySetting(
        _ entry: IniDocument.Entry, section: String,
        _ apply: (inout ConfigBuilder, IniDocument.Entry) throws(SettingError) -> Bool
    ) {
        do {
            if try !apply(&self, entry) {
                report(line: entry.line, "unknown key \"\(entry.key)\" in [\(section)]")
            }
        } catch {
            report(line: entry.line, "\(entry.key): \(error.message)")
        }
    }

    mutating func checkRelationships() {
        checkGeneralRelationships()
        checkTLSRelationships()
        checkDatabaseRelationships()
        checkIdentityRelationships()
        checkAuthQueryRelationships()
        checkBackupRelationships()
    }

    /// PostgreSQL truncates identifiers to NAMEDATALEN-1 bytes, so a longer name could never
    /// match what a client sends.
    static let maximumNameLength = 63

    mutating func checkName(_ name: String, kind: String, line: Int) -> Bool {
        if name.utf8.count > Self.maximumNameLength {
            report(line: line, "\(kind) name \"\(name)\" is longer than \(Self.maximumNameLength) bytes")
            return false
        }
        return true
    }
}
