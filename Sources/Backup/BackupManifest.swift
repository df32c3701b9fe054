import BackupFormat

/// What `<id>.json` next to `<id>.pcbk` records about one backup (docs/BACKUP.md). A backup is
/// *good* only when its manifest says `status: "good"` and the stored file exists: the
/// manifest is written (atomically) only after the stored file was fsynced and renamed.
public struct BackupManifest: Equatable, Sendable {
    public enum Status: String, Sendable {
        case good
        case failed
    }

    /// 32 lower-case hex digits: the 16-byte backup id of the file header.
    public var id: String
    public var database: String
    /// Unix time, seconds.
    public var startedAt: Int64
    public var endedAt: Int64
    public var status: Status
    /// pg_dump's output (before compression).
    public var plaintextBytes: Int64 = 0
    public var compressedBytes: Int64 = 0
    /// Bytes of the stored (encrypted) file.
    public var storedBytes: Int64 = 0
    /// SHA-256 of the stored file, hex.
    public var sha256: String = ""
    public var pgDumpVersion: String = ""
    public var serverVersion: String = ""
    /// The master key's id (hex) the backup was made with: after a key rotation this says
    /// which key file restores it.
    public var keyID: String = ""
    /// `custom` (one stored file, `<id>.pcbk`) or `directory` (pg_dump -Fd: one stored file
    /// per file pg_dump wrote, listed in `files`).
    public var format: String = "custom"
    /// pg_dump's parallel jobs (`-j`) for a directory-format backup; 1 otherwise.
    public var jobs: Int64 = 1
    /// A directory-format backup's files, in the order pg_dump finished them.
    public var files: [File] = []
    /// Directory format: the most plaintext pg_dump's files held on disk at once while being
    /// followed (allocated blocks, sampled every ~20 ms).
    public var peakPlaintextOnDisk: Int64 = 0
    /// Why a failed backup failed (pg_dump's stderr, trimmed); empty when good.
    public var error: String = ""
    /// HMAC-SHA256 (hex) of the manifest's text without this field, under a key derived from
    /// the master key `key_id` names (``sealed(with:)``). Anyone who can write to the store but
    /// has no key could otherwise relabel a backup (another database, a later date, `good`) and
    /// make `backup prune` delete the real ones (found in review).
    public var mac: String = ""

    /// One file of a directory-format backup: pg_dump's name for it, its sizes, and the
    /// SHA-256 of its stored (encrypted) form.
    public struct File: Equatable, Sendable {
        public var name: String
        public var plaintextBytes: Int64
        public var storedBytes: Int64
        public var sha256: String

        public init(name: String, plaintextBytes: Int64, storedBytes: Int64, sha256: String) {
            self.name = name
            self.plaintextBytes = plaintextBytes
            self.storedBytes = storedBytes
            self.sha256 = sha256
        }

        /// The names pg_dump -Fd writes (pg_backup_directory.c: `toc.dat`, `<dumpId>.dat`,
        /// `blob_<oid>.dat`, `blobs.toc`, and `blobs_<dumpId>.toc` from PostgreSQL 17): they
        /// name stored files and FIFOs, so nothing else (no `/`, no dot files) is accepted.
        public static func isValidName(_ name: String) -> Bool {
            let bytes = Array(name.utf8)
            guard (1...100).contains(bytes.count), bytes.first != UInt8(ascii: ".") else { return false }
            return bytes.allSatisfy { ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x7a) || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: ".") }
        }
    }

    public init(id: String, database: String, startedAt: Int64, endedAt: Int64, status: Status) {
        self.id = id
        self.database = database
        self.startedAt = startedAt
        self.endedAt = endedAt
        self.status = status
    }

    public static let formatVersion = 1
    /// The largest manifest read: a directory-format backup lists every file pg_dump wrote
    /// (one per large object, ~170 bytes each), so this allows some 190 000 of them.
    public static let sizeLimit = 32 << 20

    /// This manifest with its MAC under `key` (which must be the one `keyID` names).
    public func sealed(with key: BackupKey) -> BackupManifest {
        var sealed = self
        sealed.mac = ""
        sealed.mac = Self.hexString(key.manifestMAC(Array(sealed.encoded().utf8)))
        return sealed
    }

    /// True when `mac` is right under the key of `keys` whose id is `keyID`.
    public func isAuthentic(keys: [BackupKey]) -> Bool {
        guard !mac.isEmpty, let key = keys.first(where: { Self.hexString($0.keyID) == keyID }) else { return false }
        let expected = sealed(with: key).mac
        return expected.utf8.count == mac.utf8.count
            && zip(expected.utf8, mac.utf8).reduce(UInt8(0)) { $0 | ($1.0 ^ $1.1) } == 0
    }

    /// `isAuthentic`, or the error saying why not.
    public func authenticate(keys: [BackupKey]) throws(BackupError) {
        guard keys.contains(where: { Self.hexString($0.keyID) == keyID }) else {
            throw BackupError("backup \(id) was made with another key (key id \(keyID)); give that secret_key_file with --old-key")
        }
        guard isAuthentic(keys: keys) else {
            throw BackupError("the manifest of backup \(id) is not authentic: it was altered" + (mac.isEmpty ? " (it has no MAC)" : ""))
        }
    }

    static func hexString(_ bytes: [UInt8]) -> String {
        bytes.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
    }

    /// A JSON object, one key per line (stable order, so manifests diff well).
    public func encoded() -> String {
        let fields: [(String, JSONValue)] = [
            ("manifest_version", .number(Int64(Self.formatVersion))),
            ("id", .string(id)),
            ("database", .string(database)),
            ("status", .string(status.rawValue)),
            ("started_at", .number(startedAt)),
            ("ended_at", .number(endedAt)),
            ("format", .string(format)),
            ("plaintext_bytes", .number(plaintextBytes)),
            ("compressed_bytes", .number(compressedBytes)),
            ("stored_bytes", .number(storedBytes)),
            ("sha256", .string(sha256)),
            ("pg_dump_version", .string(pgDumpVersion)),
            ("server_version", .string(serverVersion)),
            ("key_id", .string(keyID)),
            ("error", .string(error)),
        ]
        var lines = fields.map { "  " + JSON.quote($0.0) + ": " + $0.1.rendered }
        if format != "custom" {
            lines.append("  \"jobs\": \(jobs)")
            lines.append("  \"peak_plaintext_on_disk\": \(peakPlaintextOnDisk)")
            let files = self.files.map { file -> String in
                "    " + JSONValue.object([("name", .string(file.name)), ("plaintext_bytes", .number(file.plaintextBytes)),
                                            ("stored_bytes", .number(file.storedBytes)), ("sha256", .string(file.sha256))]).rendered
            }
            lines.append("  \"files\": [" + (files.isEmpty ? "]" : "\n" + files.joined(separator: ",\n") + "\n  ]"))
        }
        if !mac.isEmpty { lines.append("  \"mac\": " + JSON.quote(mac)) }
        return "{\n" + lines.joined(separator: ",\n") + "\n}\n"
    }

    public static func decode(_ text: String) throws(BackupError) -> BackupManifest {
        let object: [String: JSONValue]
        do { object = try JSON.parseFlatObject(text) } catch { throw BackupError("manifest: \(error.description)") }
        func string(_ key: String) throws(BackupError) -> String {
            guard case .string(let value)? = object[key] else { throw BackupError("manifest: \"\(key)\" missing or not a string") }
            return value
        }
        func number(_ key: String) throws(BackupError) -> Int64 {
            guard case .number(let value)? = object[key] else { throw BackupError("manifest: \"\(key)\" missing or not an integer") }
            return value
        }
        guard try number("manifest_version") == Int64(formatVersion) else { throw BackupError("manifest: unsupported manifest_version") }
        guard let status = Status(rawValue: try string("status")) else { throw BackupError("manifest: unknown status") }
        let id = try string("id")
        guard isValidID(id) else { throw BackupError("manifest: invalid id") }
        var manifest = BackupManifest(id: id, database: try string("database"), startedAt: try number("started_at"),
                                      endedAt: try number("ended_at"), status: status)
        manifest.format = try string("format")
        manifest.plaintextBytes = try number("plaintext_bytes")
        manifest.compressedBytes = try number("compressed_bytes")
        manifest.storedBytes = try number("stored_bytes")
        manifest.sha256 = try string("sha256")
        manifest.pgDumpVersion = try string("pg_dump_version")
        manifest.serverVersion = try string("server_version")
        manifest.keyID = try string("key_id")
        manifest.error = try string("error")
        if object["mac"] != nil { manifest.mac = try string("mac") }
        guard manifest.format == "custom" || manifest.format == "directory" else {
            throw BackupError("manifest: unknown format \"\(manifest.format)\"")
        }
        if manifest.format == "directory" {
            manifest.jobs = try number("jobs")
            manifest.peakPlaintextOnDisk = try number("peak_plaintext_on_disk")
            guard case .array(let entries)? = object["files"] else { throw BackupError("manifest: \"files\" missing or not an array") }
            var seen = Set<String>()
            for entry in entries {
                func field(_ key: String) -> JSONValue? { entry.first { $0.0 == key }?.1 }
                guard case .string(let name)? = field("name"), case .number(let plain)? = field("plaintext_bytes"),
                      case .number(let stored)? = field("stored_bytes"), case .string(let sha)? = field("sha256") else {
                    throw BackupError("manifest: a \"files\" entry lacks name, plaintext_bytes, stored_bytes or sha256")
                }
                guard File.isValidName(name), seen.insert(name).inserted else { throw BackupError("manifest: invalid or repeated file name") }
                manifest.files.append(File(name: name, plaintextBytes: plain, storedBytes: stored, sha256: sha))
            }
        }
        return manifest
    }

    /// Ids name files, so only what `BackupRunner` makes is accepted: 32 lower-case hex digits.
    public static func isValidID(_ id: String) -> Bool {
        id.utf8.count == 32 && id.utf8.allSatisfy { ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x66) }
    }
}

public struct BackupError: Error, Equatable, Sendable, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

enum JSONValue: Equatable {
    case string(String)
    case number(Int64)
    /// A flat object (manifests nest only `files` entries), fields in order.
    case object([(String, JSONValue)])
    /// An array of flat objects.
    case array([[(String, JSONValue)]])

    var rendered: String {
        switch self {
        case .string(let text): JSON.quote(text)
        case .number(let value): String(value)
        case .object(let fields): "{" + fields.map { JSON.quote($0.0) + ": " + $0.1.rendered }.joined(separator: ", ") + "}"
        case .array(let objects): "[" + objects.map { JSONValue.object($0).rendered }.joined(separator: ", ") + "]"
        }
    }

    static func == (lhs: JSONValue, rhs: JSONValue) -> Bool { lhs.rendered == rhs.rendered }
}

/// Just enough JSON (RFC 8259) for manifests: one object of strings, integers and arrays of
/// flat objects (a directory-format backup's `files`).
enum JSON {
    static func quote(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if scalar.value < 0x20 || scalar.value == 0x7f {
                    let hex = String(scalar.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out + "\""
    }

    static func parseFlatObject(_ text: String) throws(BackupError) -> [String: JSONValue] {
        var parser = Parser(scalars: Array(text.unicodeScalars))
        var result: [String: JSONValue] = [:]
        for (key, value) in try parser.object(nested: false) {
            guard result.updateValue(value, forKey: key) == nil else { throw BackupError("invalid JSON: duplicate key \"\(key)\"") }
        }
        parser.skipSpace()
        guard parser.position == parser.scalars.count else { throw BackupError("invalid JSON: data after the object") }
        return result
    }

    struct Parser {
        let scalars: [Unicode.Scalar]
        var position = 0

        mutating func skipSpace() {
            while position < scalars.count, [" ", "\n", "\r", "\t"].contains(scalars[position]) { position += 1 }
        }

        mutating func expect(_ scalar: Unicode.Scalar) throws(BackupError) {
            skipSpace()
            guard position < scalars.count, scalars[position] == scalar else { throw BackupError("invalid JSON: expected \(scalar)") }
            position += 1
        }

        /// Fields in order; `nested`: an entry of `files`, which holds no arrays.
        mutating func object(nested: Bool) throws(BackupError) -> [(String, JSONValue)] {
            try expect("{")
            var result: [(String, JSONValue)] = []
            skipSpace()
            if position < scalars.count, scalars[position] == "}" {
                position += 1
            } else {
                while true {
                    let key = try string()
                    try expect(":")
                    skipSpace()
                    guard position < scalars.count else { throw BackupError("invalid JSON: value expected") }
                    let value: JSONValue
                    if scalars[position] == "\"" {
                        value = .string(try string())
                    } else if scalars[position] == "[" && !nested {
                        value = .array(try array())
                    } else {
                        value = .number(try number())
                    }
                    guard !result.contains(where: { $0.0 == key }) else { throw BackupError("invalid JSON: duplicate key \"\(key)\"") }
                    result.append((key, value))
                    skipSpace()
                    guard position < scalars.count else { throw BackupError("invalid JSON: unterminated object") }
                    if scalars[position] == "," { position += 1; continue }
                    try expect("}")
                    break
                }
            }
            return result
        }

        mutating func array() throws(BackupError) -> [[(String, JSONValue)]] {
            try expect("[")
            var result: [[(String, JSONValue)]] = []
            skipSpace()
            if position < scalars.count, scalars[position] == "]" {
                position += 1
                return result
            }
            while true {
                result.append(try object(nested: true))
                skipSpace()
                guard position < scalars.count else { throw BackupError("invalid JSON: unterminated array") }
                if scalars[position] == "," { position += 1; continue }
                try expect("]")
                return result
            }
        }

        mutating func number() throws(BackupError) -> Int64 {
            var text = ""
            if position < scalars.count, scalars[position] == "-" { text += "-"; position += 1 }
            while position < scalars.count, ("0"..."9").contains(scalars[position]) {
                text.unicodeScalars.append(scalars[position])
                position += 1
            }
            guard let value = Int64(text) else { throw BackupError("invalid JSON: integer expected") }
            return value
        }

        mutating func string() throws(BackupError) -> String {
            try expect("\"")
            var out = String.UnicodeScalarView()
            while position < scalars.count {
                let scalar = scalars[position]
                position += 1
                switch scalar {
                case "\"":
                    return String(out)
                case "\\":
                    guard position < scalars.count else { break }
                    let escape = scalars[position]
                    position += 1
                    switch escape {
                    case "\"", "\\", "/": out.append(escape)
                    case "n": out.append("\n")
                    case "r": out.append("\r")
                    case "t": out.append("\t")
                    case "b": out.append("\u{8}")
                    case "f": out.append("\u{c}")
                    case "u":
                        guard position + 4 <= scalars.count,
                              let code = UInt32(String(String.UnicodeScalarView(scalars[position..<(position + 4)])), radix: 16),
                              let decoded = Unicode.Scalar(code) else { throw BackupError("invalid JSON: bad \\u escape") }
                        position += 4
                        out.append(decoded)
                    default:
                        throw BackupError("invalid JSON: bad escape")
                    }
                default:
                    guard scalar.value >= 0x20 else { throw BackupError("invalid JSON: control character in a string") }
                    out.append(scalar)
                }
            }
            throw BackupError("invalid JSON: unterminated string")
        }
    }
}
