import Glibc

/// Why a single value was rejected; the loader prefixes the key and adds file:line.
struct SettingError: Error {
    var message: String

    init(_ message: String) {
        self.message = message
    }
}

/// Parsers for setting values, following the rules of postgresql.conf
/// (PostgreSQL 20.1.1 Parameter Names and Values): units are case-sensitive and may be
/// separated from the number by whitespace; sizes use 1024 multiples.
enum SettingValue {
    static func integer(_ text: String, in range: ClosedRange<Int>) throws(SettingError) -> Int {
        guard let value = Int(text) else {
            throw SettingError("\"\(text)\" is not an integer")
        }
        guard range.contains(value) else {
            throw SettingError("\(value) is outside the valid range \(range.lowerBound) .. \(range.upperBound)")
        }
        return value
    }

    private static let durationUnitsInMilliseconds: [(unit: String, factor: Int64)] = [
        ("ms", 1), ("s", 1000), ("min", 60_000), ("h", 3_600_000), ("d", 86_400_000),
    ]

    /// A non-negative duration; a bare number means seconds.
    static func duration(_ text: String) throws(SettingError) -> Duration {
        let hint = "expected a non-negative integer with an optional unit (ms, s, min, h, d; default s)"
        guard let (number, unit) = splitNumberAndUnit(text) else {
            throw SettingError("invalid duration \"\(text)\": \(hint)")
        }
        let factor: Int64
        if unit.isEmpty {
            factor = 1000
        } else if let match = durationUnitsInMilliseconds.first(where: { $0.unit == unit }) {
            factor = match.factor
        } else {
            throw SettingError("invalid duration \"\(text)\": valid units are \"ms\", \"s\", \"min\", \"h\" and \"d\"")
        }
        let (milliseconds, overflow) = number.multipliedReportingOverflow(by: factor)
        guard !overflow, milliseconds <= Int64(Int32.max) * 1000 else {
            throw SettingError("duration \"\(text)\" is too large")
        }
        return .milliseconds(milliseconds)
    }

    private static let sizeUnitsInBytes: [(unit: String, factor: Int64)] = [
        ("B", 1), ("kB", 1 << 10), ("MB", 1 << 20), ("GB", 1 << 30), ("TB", 1 << 40),
    ]

    /// A byte count; a bare number means bytes.
    static func size(_ text: String) throws(SettingError) -> Int {
        let hint = "expected a non-negative integer with an optional unit (B, kB, MB, GB, TB; default B)"
        guard let (number, unit) = splitNumberAndUnit(text) else {
            throw SettingError("invalid size \"\(text)\": \(hint)")
        }
        let factor: Int64
        if unit.isEmpty {
            factor = 1
        } else if let match = sizeUnitsInBytes.first(where: { $0.unit == unit }) {
            factor = match.factor
        } else {
            throw SettingError("invalid size \"\(text)\": valid units are \"B\", \"kB\", \"MB\", \"GB\" and \"TB\"")
        }
        let (bytes, overflow) = number.multipliedReportingOverflow(by: factor)
        guard !overflow else { throw SettingError("size \"\(text)\" is too large") }
        return Int(bytes)
    }

    static func size(_ text: String, in range: ClosedRange<Int>) throws(SettingError) -> Int {
        let bytes = try size(text)
        guard range.contains(bytes) else {
            throw SettingError(
                "\(text) is outside the valid range \(formatSize(range.lowerBound)) .. \(formatSize(range.upperBound))")
        }
        return bytes
    }

    static func formatSize(_ bytes: Int) -> String {
        for (unit, factor) in sizeUnitsInBytes.reversed() where bytes >= factor && Int64(bytes) % factor == 0 {
            return "\(Int64(bytes) / factor)\(unit)"
        }
        return "\(bytes)B"
    }

    private static func splitNumberAndUnit(_ text: String) -> (Int64, String)? {
        let digits = text.prefix(while: { $0.isASCII && $0.isNumber })
        guard !digits.isEmpty, let number = Int64(digits) else { return nil }
        let unit = String(IniParser.trimmed(Array(text[digits.endIndex...])[...]))
        return (number, unit)
    }

    /// PostgreSQL's parse_bool: case-insensitive, any unambiguous prefix of true/false/yes/no,
    /// on/off (at least two letters), 1/0.
    static func boolean(_ text: String) throws(SettingError) -> Bool {
        let lowered = text.lowercased()
        func isPrefix(of word: String, minimumLength: Int = 1) -> Bool {
            lowered.count >= minimumLength && word.hasPrefix(lowered)
        }
        if isPrefix(of: "true") || isPrefix(of: "yes") || isPrefix(of: "on", minimumLength: 2) || lowered == "1" {
            return true
        }
        if isPrefix(of: "false") || isPrefix(of: "no") || isPrefix(of: "off", minimumLength: 2) || lowered == "0" {
            return false
        }
        throw SettingError("\"\(text)\" is not a boolean (use on/off, true/false, yes/no or 1/0)")
    }

    /// File-mode bits written the way unix_socket_permissions is: an octal number with a
    /// leading zero (PostgreSQL 20.3.1 Connection Settings).
    static func octalPermissions(_ text: String) throws(SettingError) -> UInt32 {
        let octalDigits = Set("01234567")
        guard text.count >= 2, text.first == "0", text.allSatisfy({ octalDigits.contains($0) }),
            let value = UInt32(text, radix: 8)
        else {
            throw SettingError("\"\(text)\" is not an octal file mode starting with 0, such as 0770")
        }
        guard value <= 0o777 else {
            throw SettingError("\(text) is larger than 0777")
        }
        return value
    }

    /// One of an enum's raw values, compared case-insensitively like PostgreSQL enum settings.
    static func choice<Choice: RawRepresentable & CaseIterable>(_ text: String, of type: Choice.Type)
        throws(SettingError) -> Choice where Choice.RawValue == String
    {
        if let match = Choice.allCases.first(where: { $0.rawValue.lowercased() == text.lowercased() }) {
            return match
        }
        let valid = Choice.allCases.map(\.rawValue).joined(separator: ", ")
        throw SettingError("\"\(text)\" is not valid; expected one of: \(valid)")
    }

    /// Comma-separated list with surrounding whitespace removed; an empty value is an empty list.
    static func list(_ text: String) throws(SettingError) -> [String] {
        if text.isEmpty { return [] }
        let items = text.split(separator: ",", omittingEmptySubsequences: false).map {
            String(IniParser.trimmed(Array($0)[...]))
        }
        if items.contains(where: \.isEmpty) {
            throw SettingError("empty entry in comma-separated list")
        }
        return items
    }

    /// listen_addresses: literal addresses, `localhost` (both loopbacks) or `*` (all addresses).
    /// Host names are not resolved so the listening set never depends on DNS.
    static func listenAddresses(_ text: String) throws(SettingError) -> [String] {
        var addresses: [String] = []
        let items = try list(text)
        if items.count > 1, items.contains("*") {
            throw SettingError("\"*\" already means every address; list it alone")
        }
        for item in items {
            let expanded: [String]
            if item.lowercased() == "localhost" {
                expanded = ["127.0.0.1", "::1"]
            } else if item == "*" {
                expanded = ["0.0.0.0", "::"]
            } else if isIPAddress(item) {
                expanded = [item]
            } else {
                throw SettingError(
                    "\"\(item)\" is not a literal IPv4 or IPv6 address, \"localhost\" or \"*\" (host names are not resolved)")
            }
            for address in expanded {
                guard !addresses.contains(address) else {
                    throw SettingError("address \(address) is listed more than once")
                }
                addresses.append(address)
            }
        }
        return addresses
    }

    static func isIPAddress(_ text: String) -> Bool {
        parsesAsAddress(text, family: AF_INET) || parsesAsAddress(text, family: AF_INET6)
    }

    private static func parsesAsAddress(_ text: String, family: Int32) -> Bool {
        var storage = in6_addr()
        return withUnsafeMutableBytes(of: &storage) { buffer in
            inet_pton(family, text, buffer.baseAddress) == 1
        }
    }

    /// unix_socket_directories: absolute paths, trailing slashes removed.
    static func socketDirectories(_ text: String) throws(SettingError) -> [String] {
        var directories: [String] = []
        for item in try list(text) {
            guard item.hasPrefix("/") else {
                throw SettingError("\"\(item)\" is not an absolute path")
            }
            var directory = item
            while directory.count > 1, directory.hasSuffix("/") { directory.removeLast() }
            guard !directories.contains(directory) else {
                throw SettingError("directory \(directory) is listed more than once")
            }
            directories.append(directory)
        }
        return directories
    }

    /// sockaddr_un.sun_path holds 108 bytes including the terminating NUL.
    static let maximumSocketPathLength = 107

    static func socketPath(directory: String, port: UInt16) -> String {
        (directory == "/" ? "" : directory) + "/.s.PGSQL.\(port)"
    }
}
