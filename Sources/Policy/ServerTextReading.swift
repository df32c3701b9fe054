import Glibc

/// How the server session reads statement text, from the settings it reports in ParameterStatus
/// (`standard_conforming_strings` and `client_encoding` are both GUC_REPORT: sent at start-up and
/// on every change, before the ReadyForQuery of the statement that changed them; docs 55.2.7
/// Asynchronous Operations).
///
/// libpg_query lexes as PostgreSQL does with `standard_conforming_strings = on`, on UTF-8 text.
/// PostgreSQL converts a Query string from `client_encoding` before its raw parser sees it
/// (src/backend/tcop/postgres.c, pg_client_to_server), and with `standard_conforming_strings =
/// off` a backslash escapes the quote in `'…'` (src/backend/parser/scan.l, `<xq>` with
/// `standard_conforming_strings` off reads `\'` as a quote). Where they differ the audit stream
/// cannot trust libpg_query's split or class (``divergence``), and text in a non-UTF-8 encoding
/// is converted before it is logged (``ClientText``).
public struct ServerTextReading: Equatable, Sendable {
    /// `standard_conforming_strings` is `on` (the default since PostgreSQL 9.1).
    public var standardConformingStrings = true
    /// `client_encoding` as the server reports it (its canonical name, encnames.c pg_enc2name_tbl).
    public var clientEncoding = "UTF8"

    public init() {}

    /// The reading of a server whose start-up ParameterStatus values are `parameters`.
    public init(parameters: [(String, String)]) {
        for (name, value) in parameters { parameterStatus(name: name, value: value) }
    }

    /// One ParameterStatus.
    public mutating func parameterStatus(name: String, value: String) {
        switch name.lowercased() {
        case "standard_conforming_strings": standardConformingStrings = value.lowercased() == "on"
        case "client_encoding": clientEncoding = value
        default: break
        }
    }

    /// The reading of a stretch of time in which both `self` and `later` held: whatever lexes
    /// differently wins (off stays off; an encoding that hides ASCII bytes stays), so a batch
    /// during which the server switched back and forth is judged by the worst of them.
    public func merged(with later: ServerTextReading) -> ServerTextReading {
        var out = later
        out.standardConformingStrings = standardConformingStrings && later.standardConformingStrings
        if ClientEncodingPolicy.isUnsafe(clientEncoding) && !ClientEncodingPolicy.isUnsafe(later.clientEncoding) {
            out.clientEncoding = clientEncoding
        }
        return out
    }

    /// Why the server may split or read statement text differently from libpg_query; nil when
    /// it reads it the same way.
    public var divergence: String? {
        var reasons: [String] = []
        if !standardConformingStrings {
            reasons.append("standard_conforming_strings is off (a backslash can end or continue a string the classifier reads otherwise)")
        }
        if ClientEncodingPolicy.isUnsafe(clientEncoding) {
            reasons.append("client_encoding \(clientEncoding) has multibyte characters whose second byte is in the ASCII range")
        }
        return reasons.isEmpty ? nil : reasons.joined(separator: "; ")
    }

    /// Whether the client's bytes are UTF-8 as they stand (UTF8, and SQL_ASCII, which the server
    /// does not convert: its bytes above 0x7F are logged as UTF-8 when they are).
    public var isUTF8: Bool {
        let key = ClientEncodingPolicy.cleanedName(clientEncoding)
        return key == "utf8" || key == "unicode" || key == "sqlascii"
    }
}

/// Statement text in a client encoding other than UTF-8, converted to UTF-8 for the audit record.
public enum ClientText {
    /// `bytes` in `encoding` as UTF-8, and whether it was converted faithfully. LATIN1 maps each
    /// byte to the code point of its value (ISO 8859-1); other encodings PostgreSQL converts
    /// (docs 24.3.4 Available Character Set Conversions) go through glibc's iconv under the
    /// names in ``iconvNames``. Bytes that do not convert — or an encoding without a converter
    /// (MULE_INTERNAL) — come out as UTF-8 would read them, with U+FFFD for what is not UTF-8,
    /// and `faithful` false.
    public static func decode(_ bytes: some Collection<UInt8>, encoding: String) -> (text: String, faithful: Bool) {
        if !bytes.contains(where: { $0 >= 0x80 }) { return (String(decoding: bytes, as: UTF8.self), true) }
        let key = ClientEncodingPolicy.cleanedName(encoding)
        if key == "latin1" || key == "iso88591" {
            var scalars = String.UnicodeScalarView()
            for byte in bytes { scalars.append(Unicode.Scalar(byte)) }
            return (String(scalars), true)
        }
        if let name = iconvNames[key], let converted = iconvert(Array(bytes), from: name) { return (converted, true) }
        let text = String(decoding: bytes, as: UTF8.self)
        return (text, key == "utf8" || key == "unicode" ? !text.unicodeScalars.contains("\u{FFFD}") : false)
    }

    /// PostgreSQL's names of the encodings (encnames.c, in clean_encoding_name form) and glibc
    /// iconv's names for them. The client-only ones too (SJIS, BIG5, GBK, UHC, GB18030, JOHAB,
    /// SHIFT_JIS_2004, as PostgreSQL maps them: SJIS and BIG5 are Windows' 932 and 950, GBK
    /// 936, UHC 949): their text is logged unsplit, but readable (found in review: valid SJIS
    /// came out as U+FFFD and stray backslashes).
    static let iconvNames: [String: String] = [
        "sjis": "CP932", "big5": "CP950", "gbk": "CP936", "uhc": "CP949", "gb18030": "GB18030", "johab": "JOHAB",
        "shiftjis2004": "SHIFT_JISX0213", "mskanji": "CP932", "shiftjis": "CP932", "win932": "CP932", "win950": "CP950",
        "win936": "CP936", "win949": "CP949", "tcvn": "CP1258", "tcvn5712": "CP1258", "vscii": "CP1258", "abc": "CP1258",
        "latin2": "ISO-8859-2", "latin3": "ISO-8859-3", "latin4": "ISO-8859-4", "latin5": "ISO-8859-9",
        "latin6": "ISO-8859-10", "latin7": "ISO-8859-13", "latin8": "ISO-8859-14", "latin9": "ISO-8859-15",
        "latin10": "ISO-8859-16", "iso88595": "ISO-8859-5", "iso88596": "ISO-8859-6", "iso88597": "ISO-8859-7",
        "iso88598": "ISO-8859-8", "win866": "CP866", "win874": "CP874", "win1250": "CP1250", "win1251": "CP1251",
        "win1252": "CP1252", "win1253": "CP1253", "win1254": "CP1254", "win1255": "CP1255", "win1256": "CP1256",
        "win1257": "CP1257", "win1258": "CP1258", "koi8r": "KOI8-R", "koi8u": "KOI8-U", "eucjp": "EUC-JP",
        "euccn": "EUC-CN", "euckr": "EUC-KR", "euctw": "EUC-TW", "eucjis2004": "EUC-JISX0213",
    ]

    /// `bytes` converted by iconv(3) from `name` to UTF-8; nil when a byte does not convert.
    static func iconvert(_ bytes: [UInt8], from name: String) -> String? {
        let descriptor = iconv_open("UTF-8", name)
        guard let descriptor, Int(bitPattern: descriptor) != -1 else { return nil }
        defer { iconv_close(descriptor) }
        // At most 4 UTF-8 bytes per input byte for these encodings (3 for BMP characters).
        var output = [UInt8](repeating: 0, count: bytes.count * 4 + 4)
        var input = bytes
        let written: Int? = input.withUnsafeMutableBytes { inRaw in
            output.withUnsafeMutableBytes { outRaw -> Int? in
                var inPointer = inRaw.baseAddress?.assumingMemoryBound(to: CChar.self)
                var inLeft = inRaw.count
                var outPointer = outRaw.baseAddress?.assumingMemoryBound(to: CChar.self)
                var outLeft = outRaw.count
                guard iconv(descriptor, &inPointer, &inLeft, &outPointer, &outLeft) != size_t.max, inLeft == 0 else { return nil }
                return outRaw.count - outLeft
            }
        }
        guard let written else { return nil }
        return String(decoding: output[..<written], as: UTF8.self)
    }
}
