import Auth
import CPortcullisShims

/// Backup file format, version 1: a fixed header, then authenticated chunks.
///
/// ```
/// header (80 bytes, all integers big-endian):
///   magic      "PCBK"                      4
///   version    1                           1
///   cipher     1 = AES-256-GCM             1
///   flags      bit 0: payload is zstd;     1
///              bit 1: a member file of a directory-format backup (its name is bound)
///   reserved   0                           1
///   chunkSize  plaintext bytes per chunk   4
///   backupID   16 random bytes             16
///   salt       32 random bytes             32
///   keyID      16 bytes naming the master key (``BackupKey/keyID``)   16
///   headerMAC  first 4 bytes of HMAC-SHA256(backup key, preceding 76 bytes)  4
/// chunk (repeated):
///   length     ciphertext bytes, ≤ chunkSize  4
///   ciphertext                                 length
///   tag        GCM tag                        16
/// ```
///
/// The backup key is HKDF-SHA256 (RFC 5869) of the master key (`secret_key_file`) with the
/// random salt and info `"portcullis backup v1" || backupID`, so every backup has its own key.
/// Chunk *i* is sealed with nonce `0x00000000 || i` (u64) — unique, because the key is — and
/// associated data `header || i (u64) || final (u8)`. Hence: an edited byte anywhere fails its
/// chunk's tag (header bytes fail every chunk); chunks moved, dropped or taken from another
/// backup fail (wrong index or key); a file cut short, even exactly after a chunk, fails because
/// no chunk carries the final flag; bytes after the final chunk are refused. The last chunk is
/// always sealed with the final flag, empty when the data ended on a chunk boundary.
///
/// A directory-format backup (pg_dump -Fd) stores each of pg_dump's files as its own stream:
/// flags bit 1 set, its own random salt (so its own key: nonces never repeat across files),
/// the backup id in its header, and its file name bound into every chunk's associated data
/// (`header || u16 name length || name || i || final`). A file stored under another name of
/// the same backup, or taken from another backup, therefore fails authentication.
public enum BackupFormat {
    public static let magic: [UInt8] = Array("PCBK".utf8)
    public static let version: UInt8 = 1
    public static let headerSize = 80
    public static let tagSize = 16
    public static let defaultChunkSize = 1 << 20
    static let info = Array("portcullis backup v1".utf8)
}

public struct BackupFormatError: Error, Equatable, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}

/// The master key and the identifier recorded in every backup made with it (so `verify` can
/// say which key a backup needs after a key rotation).
public struct BackupKey: Sendable {
    let material: [UInt8]
    public let keyID: [UInt8]

    public init(material: [UInt8]) {
        self.material = material
        keyID = Array(BackupCrypto.hmacSHA256(key: material, data: Array("portcullis backup key id".utf8)).prefix(16))
    }

    /// HMAC-SHA256 of a manifest's text under a key of its own, derived from this one: a
    /// manifest says what a stored file is (which database, when, whether it is good), and
    /// retention acts on that, so it is authenticated like the file itself.
    public func manifestMAC(_ text: [UInt8]) -> [UInt8] {
        let macKey = BackupCrypto.hmacSHA256(key: material, data: Array("portcullis backup manifest mac".utf8))
        return BackupCrypto.hmacSHA256(key: macKey, data: text)
    }
}

enum BackupCrypto {
    static func hkdf(key: [UInt8], salt: [UInt8], info: [UInt8], count: Int) -> [UInt8]? {
        var out = [UInt8](repeating: 0, count: count)
        let ok = pc_hkdf_sha256(key, key.count, salt, salt.count, info, info.count, &out, count)
        return ok == 1 ? out : nil
    }

    static func hmacSHA256(key: [UInt8], data: [UInt8]) -> [UInt8] {
        Crypto.hmacSHA256(key: key, data: data)
    }

    static func nonce(_ index: UInt64) -> [UInt8] {
        [0, 0, 0, 0] + bigEndian(index)
    }

    static func bigEndian(_ value: UInt64) -> [UInt8] {
        (0..<8).map { UInt8(truncatingIfNeeded: value >> (56 - 8 * $0)) }
    }

    /// `u16 length || UTF-8 name` for a member file; nothing for a single-file backup.
    static func memberField(_ member: String?) throws(BackupFormatError) -> [UInt8] {
        guard let member else { return [] }
        let bytes = Array(member.utf8)
        guard !bytes.isEmpty, bytes.count <= 255 else { throw BackupFormatError("invalid member name") }
        return [UInt8(bytes.count >> 8), UInt8(bytes.count & 0xff)] + bytes
    }

    static func bigEndian32(_ value: UInt32) -> [UInt8] {
        (0..<4).map { UInt8(truncatingIfNeeded: value >> (24 - 8 * $0)) }
    }
}

/// Streaming encryption: bytes in, file bytes out; nothing is held beyond one chunk.
public struct BackupEncryptor {
    public let header: [UInt8]
    private let key: [UInt8]
    private let chunkSize: Int
    private var pending: [UInt8] = []
    private var index: UInt64 = 0
    private var finished = false
    /// `header`, plus the bound member name for a directory-format file.
    private let aadPrefix: [UInt8]

    /// `backupID` and `salt` are random per backup (injected, so tests are reproducible).
    /// `member`: the file name of a directory-format backup's file (salt random per file).
    public init(key master: BackupKey, backupID: [UInt8], salt: [UInt8], compressed: Bool,
                chunkSize: Int = BackupFormat.defaultChunkSize, member: String? = nil) throws(BackupFormatError) {
        guard backupID.count == 16, salt.count == 32, chunkSize > 0, chunkSize <= 64 << 20 else {
            throw BackupFormatError("invalid backup parameters")
        }
        guard let key = BackupCrypto.hkdf(key: master.material, salt: salt, info: BackupFormat.info + backupID, count: 32) else {
            throw BackupFormatError("could not derive the backup key")
        }
        self.key = key
        self.chunkSize = chunkSize
        let memberName = try BackupCrypto.memberField(member)
        let flags: UInt8 = (compressed ? 1 : 0) | (member == nil ? 0 : 2)
        var header = BackupFormat.magic + [BackupFormat.version, 1, flags, 0]
        header += BackupCrypto.bigEndian32(UInt32(chunkSize)) + backupID + salt + master.keyID
        header += BackupCrypto.hmacSHA256(key: key, data: header).prefix(4)
        self.header = header
        aadPrefix = header + memberName
    }

    /// Sealed chunks for every full chunk now available.
    public mutating func update(_ bytes: some Collection<UInt8>) -> [UInt8] {
        pending += bytes
        var out: [UInt8] = []
        // A full chunk is sealed only once more data follows it: the last one must carry the
        // final flag, which is known only at `finish`.
        while pending.count > chunkSize {
            out += seal(pending[..<chunkSize], final: false)
            pending.removeFirst(chunkSize)
        }
        return out
    }

    /// The last chunk (final flag set; empty when the data ended on a chunk boundary).
    public mutating func finish() -> [UInt8] {
        precondition(!finished, "finish called twice")
        finished = true
        let out = seal(pending[...], final: true)
        pending = []
        return out
    }

    private mutating func seal(_ plain: ArraySlice<UInt8>, final: Bool) -> [UInt8] {
        let aad = aadPrefix + BackupCrypto.bigEndian(index) + [final ? 1 : 0]
        var cipher = [UInt8](repeating: 0, count: plain.count)
        var tag = [UInt8](repeating: 0, count: BackupFormat.tagSize)
        let plainCopy = Array(plain)
        let ok = pc_aes256gcm_seal(key, BackupCrypto.nonce(index), aad, aad.count, plainCopy, plainCopy.count, &cipher, &tag)
        // Sealing cannot fail with valid parameters; if OpenSSL says otherwise, fail loudly.
        precondition(ok == 1, "AES-256-GCM seal failed")
        index += 1
        return BackupCrypto.bigEndian32(UInt32(plain.count)) + cipher + tag
    }
}

/// Streaming decryption: file bytes in, plaintext out, each chunk only after its tag verified.
public struct BackupDecryptor {
    /// What the header says (available once `headerRead`).
    public struct Header: Equatable, Sendable {
        public let backupID: [UInt8]
        public let keyID: [UInt8]
        public let compressed: Bool
        public let chunkSize: Int
    }

    private let keys: [BackupKey]
    private let member: String?
    private var buffer: [UInt8] = []
    private var headerBytes: [UInt8] = []
    private var key: [UInt8] = []
    public private(set) var header: Header?
    private var index: UInt64 = 0
    private var sawFinal = false

    /// `keys`: every master key the backup may have been made with (current and retired).
    /// `member`: the name a directory-format backup's file is stored under (nil for a
    /// single-file backup); a file made for another name fails authentication.
    public init(keys: [BackupKey], member: String? = nil) {
        self.keys = keys
        self.member = member
    }

    public mutating func update(_ bytes: some Collection<UInt8>) throws(BackupFormatError) -> [UInt8] {
        buffer += bytes
        if header == nil {
            guard buffer.count >= BackupFormat.headerSize else { return [] }
            try readHeader(Array(buffer[..<BackupFormat.headerSize]))
            buffer.removeFirst(BackupFormat.headerSize)
        }
        guard let header else { return [] }
        var out: [UInt8] = []
        while buffer.count >= 4 {
            if sawFinal { throw BackupFormatError("data after the final chunk: the file was altered") }
            let length = Int(buffer[0]) << 24 | Int(buffer[1]) << 16 | Int(buffer[2]) << 8 | Int(buffer[3])
            guard length <= header.chunkSize else { throw BackupFormatError("chunk \(index): invalid length \(length)") }
            guard buffer.count >= 4 + length + BackupFormat.tagSize else { break }
            let cipher = Array(buffer[4..<(4 + length)])
            let tag = Array(buffer[(4 + length)..<(4 + length + BackupFormat.tagSize)])
            buffer.removeFirst(4 + length + BackupFormat.tagSize)
            out += try open(cipher, tag: tag)
        }
        return out
    }

    /// Call at end of input: a file without its final chunk was cut short.
    public func finish() throws(BackupFormatError) {
        guard header != nil else { throw BackupFormatError("not a Portcullis backup, or cut short inside its header") }
        guard sawFinal, buffer.isEmpty else {
            throw BackupFormatError("the backup is truncated: it ends after chunk \(index) without its final chunk")
        }
    }

    private mutating func readHeader(_ bytes: [UInt8]) throws(BackupFormatError) {
        guard Array(bytes[0..<4]) == BackupFormat.magic else { throw BackupFormatError("not a Portcullis backup (bad magic)") }
        guard bytes[4] == BackupFormat.version else { throw BackupFormatError("unsupported backup format version \(bytes[4])") }
        guard bytes[5] == 1, bytes[6] & ~3 == 0, bytes[7] == 0 else { throw BackupFormatError("unsupported backup cipher or flags") }
        if (bytes[6] & 2 != 0) != (member != nil) {
            throw BackupFormatError(member == nil ? "the file is one file of a directory-format backup, not a whole backup"
                                                  : "the file is a whole single-file backup, not a file of a directory-format backup")
        }
        let chunkSize = Int(bytes[8]) << 24 | Int(bytes[9]) << 16 | Int(bytes[10]) << 8 | Int(bytes[11])
        guard chunkSize > 0, chunkSize <= 64 << 20 else { throw BackupFormatError("invalid chunk size \(chunkSize)") }
        let backupID = Array(bytes[12..<28]), salt = Array(bytes[28..<60]), keyID = Array(bytes[60..<76])
        guard let master = keys.first(where: { $0.keyID == keyID }) else {
            throw BackupFormatError("the backup was made with another key (key id \(keyID.map { String(format2: $0) }.joined())); "
                                    + "give its secret_key_file")
        }
        guard let key = BackupCrypto.hkdf(key: master.material, salt: salt, info: BackupFormat.info + backupID, count: 32) else {
            throw BackupFormatError("could not derive the backup key")
        }
        guard Array(BackupCrypto.hmacSHA256(key: key, data: Array(bytes[0..<76])).prefix(4)) == Array(bytes[76..<80]) else {
            throw BackupFormatError("the backup header was altered")
        }
        self.key = key
        headerBytes = bytes + (try BackupCrypto.memberField(member))
        header = Header(backupID: backupID, keyID: keyID, compressed: bytes[6] & 1 == 1, chunkSize: chunkSize)
    }

    private mutating func open(_ cipher: [UInt8], tag: [UInt8]) throws(BackupFormatError) -> [UInt8] {
        var plain = [UInt8](repeating: 0, count: cipher.count)
        for final in [false, true] {
            let aad = headerBytes + BackupCrypto.bigEndian(index) + [final ? 1 : 0]
            if pc_aes256gcm_open(key, BackupCrypto.nonce(index), aad, aad.count, cipher, cipher.count, tag, &plain) == 1 {
                index += 1
                sawFinal = final
                return plain
            }
        }
        if let member {
            throw BackupFormatError("\(member): chunk \(index) failed authentication: the file was altered, reordered, "
                                    + "spliced or stored under another name")
        }
        throw BackupFormatError("chunk \(index) failed authentication: the backup was altered, reordered or spliced")
    }
}

extension String {
    init(format2 byte: UInt8) {
        let digits = Array("0123456789abcdef")
        self = String([digits[Int(byte >> 4)], digits[Int(byte & 15)]])
    }
}
