/// Client encodings a read-only identity may not choose.
///
/// PostgreSQL converts each query from `client_encoding` to the server encoding before it
/// parses it (docs 24.3.3 Automatic Character Set Conversion Between Server and Client;
/// src/backend/tcop/postgres.c, pg_client_to_server). Portcullis parses the bytes as UTF-8. For
/// the client-only encodings whose multibyte characters may have a second byte in the ASCII
/// range — SJIS, SHIFT_JIS_2004, BIG5, GBK, UHC, GB18030, JOHAB (docs 24.3.1 Supported Character
/// Sets, "Server?" = No) — the server can see a quote, backslash or semicolon where our parse saw
/// part of a character, so the text we judged is not the statement that runs. Other encodings
/// keep every byte below 0x80 an ASCII character and stay allowed.
public enum ClientEncodingPolicy {
    /// Every spelling of those encodings in PostgreSQL's alias table (src/common/encnames.c,
    /// pg_encname_tbl), in the form `clean_encoding_name` reduces names to.
    static let unsafeEncodingKeys: Set<String> = [
        "sjis", "shiftjis", "mskanji", "win932", "windows932",  // SJIS
        "shiftjis2004",                                          // SHIFT_JIS_2004
        "big5", "win950", "windows950",                          // BIG5
        "gbk", "win936", "windows936",                           // GBK
        "uhc", "win949", "windows949",                           // UHC
        "gb18030",                                               // GB18030
        "johab",                                                 // JOHAB
    ]

    /// True when `name` names one of the encodings above, however it is spelled
    /// (`Shift_JIS`, `WINDOWS-932`, `big 5`, ...).
    public static func isUnsafe(_ name: String) -> Bool {
        unsafeEncodingKeys.contains(cleanedName(name))
    }

    /// True when `name` is UTF8 (`UTF8`, `utf-8`, `Unicode`; encnames.c), the only client
    /// encoding a read-only identity may use. Keeping the syntax bytes is not enough for the
    /// gate: it matches identifiers against the catalog as UTF-8, so in LATIN1 the bytes of
    /// `"Ã©vil"` would name a view the gate reads as `"évil"` (the server converts from
    /// client_encoding before it parses, pg_client_to_server). Sessions of read-only identities
    /// start with `client_encoding=UTF8` unless the client asks for it itself.
    public static func isReadOnlyAllowed(_ name: String) -> Bool {
        let key = cleanedName(name)
        return key == "utf8" || key == "unicode"
    }

    /// PostgreSQL's `clean_encoding_name` (encnames.c): keep letters and digits, lower-cased.
    /// Non-ASCII bytes are dropped as well: the C library might count some as alphanumeric,
    /// but no alias contains one, so keeping them could only turn a match into a non-match.
    static func cleanedName(_ name: String) -> String {
        var key = ""
        for byte in name.utf8 {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"): key.append(Character(Unicode.Scalar(byte + 32)))
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"):
                key.append(Character(Unicode.Scalar(byte)))
            default: continue
            }
        }
        return key
    }
}
