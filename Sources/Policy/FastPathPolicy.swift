/// Decides fast-path FunctionCall messages ('F', PostgreSQL docs 55.2.8 "Function Call") for
/// read-only identities. The message names a function by OID, not by name, so the statement
/// classifier never sees it; libpq uses it for its large-object API (lo_open, loread, ...),
/// which pg_dump relies on to dump large objects.
///
/// Built-in functions have fixed OIDs (src/include/catalog/pg_proc.dat; every OID below
/// FirstGenbkiObjectId, 10000, is assigned at initdb and the same on every PostgreSQL
/// cluster of a major version — these have not changed since they were introduced). An OID
/// that is not on the read list is refused whatever it resolves to upstream: user functions
/// get OIDs at or above 16384 and are refused like any function not on the allow-list.
public enum FastPathPolicy {
    /// Large-object readers libpq's lo_* client functions call (fe-lobj.c looks them up by
    /// name in pg_catalog; the OIDs come from pg_proc.dat).
    public static let readSafeFunctions: [Int32: String] = [
        952: "lo_open",
        953: "lo_close",
        954: "loread",
        956: "lo_lseek",
        958: "lo_tell",
        3170: "lo_lseek64",
        3171: "lo_tell64",
    ]

    /// Large-object writers: PostgreSQL 15 refuses some of them in a read-only transaction
    /// (be-fsstubs.c PreventCommandIfReadOnly) and lets others through; all are refused here,
    /// with PostgreSQL's own wording.
    public static let largeObjectWriters: [Int32: String] = [
        955: "lowrite",
        957: "lo_creat",
        715: "lo_create",
        964: "lo_unlink",
        1004: "lo_truncate",
        3172: "lo_truncate64",
        764: "lo_import",
        767: "lo_import",
        765: "lo_export",
    ]

    /// libpq's INV_WRITE (src/include/libpq/libpq-fs.h).
    static let inventoryWrite: UInt32 = 0x0002_0000

    /// nil when a read-only identity may make this call.
    /// - Parameters:
    ///   - arguments: the call's argument values; `argumentFormats` as in the message (0 or 1
    ///     entries apply to all arguments, else one per argument).
    public static func refusal(functionOID: Int32, argumentFormats: [Int16], arguments: [[UInt8]?]) -> Refusal? {
        if let writer = largeObjectWriters[functionOID] {
            return .readOnly("\(writer)()")
        }
        guard let name = readSafeFunctions[functionOID] else {
            return .policy("the fast-path call of function \(functionOID)")
        }
        guard name == "lo_open" else { return nil }
        // lo_open(oid, mode): opening for writing is refused, as be_lo_open does in a
        // read-only transaction. A mode we cannot read is refused too (fail closed).
        guard arguments.count == 2, let mode = integerArgument(arguments[1], format: format(of: 1, in: argumentFormats)) else {
            return .policy("lo_open() with an unreadable mode")
        }
        if mode & inventoryWrite != 0 {
            return .readOnly("lo_open(INV_WRITE)")
        }
        return nil
    }

    static func format(of index: Int, in formats: [Int16]) -> Int16? {
        switch formats.count {
        case 0: return 0
        case 1: return formats[0]
        default: return index < formats.count ? formats[index] : nil
        }
    }

    static func integerArgument(_ value: [UInt8]?, format: Int16?) -> UInt32? {
        guard let value else { return nil }
        switch format {
        case 1:
            guard value.count == 4 else { return nil }
            return value.reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
        case 0:
            guard let text = String(validating: value, as: UTF8.self),
                  let number = Int32(text.trimmingPrefixWhitespace()) else { return nil }
            return UInt32(bitPattern: number)
        default:
            return nil
        }
    }
}

extension String {
    /// int4in accepts surrounding whitespace.
    fileprivate func trimmingPrefixWhitespace() -> Substring {
        let isSpace: (Character) -> Bool = { $0 == " " || $0 == "\t" || $0 == "\n" || $0 == "\r" }
        guard let first = firstIndex(where: { !isSpace($0) }), let last = lastIndex(where: { !isSpace($0) }) else {
            return ""
        }
        return self[first...last]
    }
}
