import Auth
import BackupFormat
import CPortcullisShims
import EventLoop
import Glibc

/// One file pg_dump -Fd is writing, followed while it grows (docs/BACKUP.md, *Directory
/// format*): what was appended is read in pieces of at most 1 MiB, compressed, encrypted into
/// this file's own stored stream, and then freed on disk with
/// `fallocate(FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE)` — the size stays, so pg_dump's
/// writes at its own offset are unaffected, but the plaintext already consumed is gone.
/// pg_backup_directory.c writes each file once, sequentially (`_StartData`/`_WriteData`/
/// `_EndData`, `_StartLO`/`_EndLO`), which is what makes reading behind it sound.
final class FollowedFile {
    let name: String
    let path: String
    private var fd: Int32
    private(set) var consumed: Int64 = 0
    private var punched: Int64 = 0
    private var encryptor: BackupEncryptor
    private let compressor: ZstdCompressor
    private let writer: any BackupWriter
    private let sha = StreamingSHA256()
    private(set) var compressedBytes: Int64 = 0
    private(set) var storedBytes: Int64 = 0
    /// The first bytes, for toc.dat's archive header (server and pg_dump versions).
    private(set) var head: [UInt8] = []

    init(name: String, directory: String, key: BackupKey, backupID: [UInt8], level: Int32, workers: Int32,
         store: any BackupStorage, id: String) throws(BackupError) {
        guard BackupManifest.File.isValidName(name) else { throw BackupError("pg_dump wrote an unexpected file \"\(name)\"") }
        self.name = name
        let path = "\(directory)/\(name)"
        self.path = path
        // Read-write: punching holes needs a descriptor open for writing.
        do { fd = try syscallValue { open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW) } } catch {
            throw Files.message("could not open", path, error)
        }
        var st = stat()
        guard fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else {
            closeDescriptor(fd)
            throw BackupError("\(path) is not a regular file")
        }
        do {
            encryptor = try BackupEncryptor(key: key, backupID: backupID, salt: Crypto.randomBytes(32), compressed: true, member: name)
            compressor = try ZstdCompressor(level: level, workers: workers)
        } catch {
            closeDescriptor(fd)
            throw BackupError(error.description)
        }
        do { writer = try store.memberWriter(for: id, name: name) } catch {
            closeDescriptor(fd)
            throw error
        }
        try output(encryptor.header)
    }

    deinit { if fd >= 0 { closeDescriptor(fd) } }

    private func output(_ bytes: [UInt8]) throws(BackupError) {
        guard !bytes.isEmpty else { return }
        try writer.write(bytes)
        sha.update(bytes)
        storedBytes += Int64(bytes.count)
    }

    /// Consumes everything appended so far; the bytes consumed.
    @discardableResult
    func follow() throws(BackupError) -> Int64 {
        var total: Int64 = 0
        while true {
            var buffer = [UInt8](repeating: 0, count: ChildProcess.readSize)
            let offset = consumed
            let descriptor = fd
            let result: Result<Int, Errno> = buffer.withUnsafeMutableBytes { raw in
                Result { () throws(Errno) -> Int in try syscallValue { pread(descriptor, raw.baseAddress, raw.count, off_t(offset)) } }
            }
            let count: Int
            switch result {
            case .success(let got): count = got
            case .failure(let error): throw Files.message("could not read", path, error)
            }
            if count == 0 { return total }
            buffer.removeSubrange(count...)
            if head.count < 8192 { head += buffer.prefix(8192 - head.count) }
            let compressed: [UInt8]
            do { compressed = try compressor.update(buffer) } catch { throw BackupError(error.description) }
            compressedBytes += Int64(compressed.count)
            try output(encryptor.update(compressed))
            consumed += Int64(count)
            total += Int64(count)
            try punch()
        }
    }

    /// Frees the plaintext consumed so far (the exact byte range: partial blocks are zeroed,
    /// whole ones deallocated, and nothing beyond `consumed` is touched).
    private func punch() throws(BackupError) {
        guard consumed > punched else { return }
        if pc_punch_hole(fd, punched, consumed - punched) != 0 {
            let error = String(cString: strerror(errno))
            throw BackupError("could not free the consumed part of \(path) (fallocate PUNCH_HOLE: \(error)); "
                              + "the directory format needs a file system that can punch holes (ext4, xfs, btrfs, tmpfs)")
        }
        punched = consumed
    }

    /// Plaintext still allocated on disk for this file (for the peak the manifest records).
    var allocatedBytes: Int64 {
        var st = stat()
        return fstat(fd, &st) == 0 ? Int64(st.st_blocks) * 512 : 0
    }

    /// Call once pg_dump closed the file: reads the rest, ends the stream, commits the stored
    /// file and removes the (hole-punched) original.
    func finish() throws(BackupError) -> BackupManifest.File {
        try follow()
        let tail: [UInt8]
        do { tail = try compressor.finish() } catch { throw BackupError(error.description) }
        compressedBytes += Int64(tail.count)
        try output(encryptor.update(tail))
        try output(encryptor.finish())
        try writer.commit(storedBytes: storedBytes)
        closeDescriptor(fd)
        fd = -1
        Files.remove(path)
        return BackupManifest.File(name: name, plaintextBytes: consumed, storedBytes: storedBytes, sha256: sha.finish())
    }

    func abort() {
        writer.abort()
        if fd >= 0 { closeDescriptor(fd); fd = -1 }
        Files.remove(path)
    }
}

/// The authenticated list of a directory-format backup's files, stored as one more member
/// (`portcullis_index`, a name pg_dump never writes): a line `name plaintext_bytes sha256`
/// per file. The manifest is not authenticated; this is, and it is bound to the backup id, so
/// a file dropped from both the store and the manifest is still found missing.
enum MemberIndex {
    static let name = "portcullis_index"

    static func render(_ files: [BackupManifest.File]) -> [UInt8] {
        Array(files.map { "\($0.name) \($0.plaintextBytes) \($0.sha256)\n" }.joined().utf8)
    }

    static func check(_ bytes: [UInt8], against files: [BackupManifest.File], id: String) throws(BackupError) {
        let listed = String(decoding: bytes, as: UTF8.self).split(separator: "\n").map(String.init).sorted()
        let expected = files.map { "\($0.name) \($0.plaintextBytes) \($0.sha256)" }.sorted()
        guard listed == expected else {
            throw BackupError("backup \(id): the manifest's file list does not match the backup's authenticated index "
                              + "(\(listed.count) files in the index, \(expected.count) in the manifest)")
        }
    }
}
