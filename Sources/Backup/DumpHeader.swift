/// The versions recorded at the start of a pg_dump custom-format archive, read from the stream
/// itself as it passes (no extra connection): PostgreSQL src/bin/pg_dump/pg_backup_archiver.c
/// `WriteHead`/`ReadHead` — "PGDMP", version (3 bytes), intSize, offSize, format, compression
/// (an int before archive version 1.15, one byte from 1.15), the creation time (7 ints), the
/// database name, then (from 1.10) the server's and pg_dump's version strings. An int is a sign
/// byte then `intSize` bytes, least significant first; a string is an int length then bytes.
public struct DumpHeader: Equatable, Sendable {
    public var serverVersion: String
    public var pgDumpVersion: String

    /// nil when the bytes are not (yet) a whole custom-format header.
    public static func parse(_ bytes: [UInt8]) -> DumpHeader? {
        guard bytes.count >= 11, Array(bytes[0..<5]) == Array("PGDMP".utf8) else { return nil }
        let version = (Int(bytes[5]), Int(bytes[6]))
        let intSize = Int(bytes[8])
        guard intSize >= 1 && intSize <= 8, version >= (1, 10) else { return nil }
        var position = 11
        func readInt() -> Int? {
            guard position + 1 + intSize <= bytes.count else { return nil }
            let negative = bytes[position] != 0
            var value = 0
            for index in 0..<intSize { value |= Int(bytes[position + 1 + index]) << (8 * index) }
            position += 1 + intSize
            return negative ? -value : value
        }
        func readString() -> String? {
            guard let length = readInt() else { return nil }
            if length < 0 { return "" }
            guard length <= 1024, position + length <= bytes.count else { return nil }
            defer { position += length }
            return String(decoding: bytes[position..<(position + length)], as: UTF8.self)
        }
        if version >= (1, 15) {
            position += 1
        } else if readInt() == nil {
            return nil
        }
        for _ in 0..<7 where readInt() == nil { return nil }
        guard readString() != nil, let server = readString(), let dump = readString() else { return nil }
        return DumpHeader(serverVersion: server, pgDumpVersion: dump)
    }
}
