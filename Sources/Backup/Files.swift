import CPortcullisShims
import EventLoop
import Glibc

/// File operations of the local-directory store, with the durability steps spelled out:
/// data is fsynced before the rename that publishes it, and the directory after it, so a
/// crash leaves either no file or the whole file under its final name.
enum Files {
    static func message(_ what: String, _ path: String, _ error: Errno) -> BackupError {
        BackupError("\(what) \"\(path)\": \(error)")
    }

    static func create(_ path: String) throws(BackupError) -> Int32 {
        do {
            return try syscallValue { open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0o600) }
        } catch { throw message("could not create", path, error) }
    }

    static func openForReading(_ path: String) throws(BackupError) -> Int32 {
        do {
            return try syscallValue { open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW) }
        } catch { throw message("could not open", path, error) }
    }

    static func writeAll(_ fd: Int32, _ bytes: [UInt8], path: String) throws(BackupError) {
        var offset = 0
        while offset < bytes.count {
            let start = offset
            let result: Result<Int, Errno> = bytes.withUnsafeBytes { raw in
                Result { () throws(Errno) -> Int in try syscallValue { Glibc.write(fd, raw.baseAddress! + start, raw.count - start) } }
            }
            switch result {
            case .success(let written): offset += written
            case .failure(let error): throw message("could not write", path, error)
            }
        }
    }

    /// Up to `count` bytes; empty at end of file.
    static func read(_ fd: Int32, count: Int, path: String) throws(BackupError) -> [UInt8] {
        var buffer = [UInt8](repeating: 0, count: count)
        let result: Result<Int, Errno> = buffer.withUnsafeMutableBytes { raw in
            Result { () throws(Errno) -> Int in try syscallValue { Glibc.read(fd, raw.baseAddress, raw.count) } }
        }
        switch result {
        case .success(let got):
            buffer.removeSubrange(got...)
            return buffer
        case .failure(let error): throw message("could not read", path, error)
        }
    }

    static func fsync(_ fd: Int32, path: String) throws(BackupError) {
        do { _ = try syscallValue { Glibc.fsync(fd) } } catch { throw message("could not fsync", path, error) }
    }

    static func fsyncDirectory(_ path: String) throws(BackupError) {
        let fd: Int32
        do { fd = try syscallValue { open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC) } } catch {
            throw message("could not open directory", path, error)
        }
        defer { closeDescriptor(fd) }
        try fsync(fd, path: path)
    }

    static func rename(_ from: String, _ to: String) throws(BackupError) {
        do { _ = try syscallValue { Glibc.rename(from, to) } } catch { throw message("could not rename", from, error) }
    }

    static func remove(_ path: String) {
        _ = unlink(path)
    }

    /// Removes a file, or a directory and everything in it; symbolic links are removed, never
    /// followed. Best effort (leftovers are retried by the next run).
    static func removeTree(_ path: String) {
        var st = stat()
        guard lstat(path, &st) == 0 else { return }
        if (st.st_mode & S_IFMT) == S_IFDIR {
            for name in (try? list(path)) ?? [] { removeTree("\(path)/\(name)") }
            _ = rmdir(path)
        } else {
            _ = unlink(path)
        }
    }

    static func exists(_ path: String) -> Bool {
        var st = stat()
        return lstat(path, &st) == 0
    }

    static func size(_ path: String) -> Int64? {
        var st = stat()
        return lstat(path, &st) == 0 ? Int64(st.st_size) : nil
    }

    /// Writes a small file atomically: `<path>.partial`, fsync, rename, fsync the directory.
    static func writeAtomically(_ text: String, to path: String, directory: String) throws(BackupError) {
        let partial = path + ".partial"
        remove(partial)
        let fd = try create(partial)
        do {
            try writeAll(fd, Array(text.utf8), path: partial)
            try fsync(fd, path: partial)
        } catch {
            closeDescriptor(fd)
            remove(partial)
            throw error
        }
        closeDescriptor(fd)
        try rename(partial, path)
        try fsyncDirectory(directory)
    }

    static func readWhole(_ path: String, limit: Int = 1 << 20) throws(BackupError) -> String {
        let fd = try openForReading(path)
        defer { closeDescriptor(fd) }
        var bytes: [UInt8] = []
        while true {
            let piece = try read(fd, count: 65536, path: path)
            if piece.isEmpty { break }
            bytes += piece
            if bytes.count > limit { throw BackupError("\"\(path)\" is larger than \(limit) bytes") }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    static func list(_ directory: String) throws(BackupError) -> [String] {
        guard let dir = opendir(directory) else {
            throw BackupError("could not open directory \"\(directory)\": \(String(cString: strerror(errno)))")
        }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names.sorted()
    }

    static func makeDirectory(_ path: String) throws(BackupError) {
        if mkdir(path, 0o700) != 0 && errno != EEXIST {
            throw BackupError("could not create directory \"\(path)\": \(String(cString: strerror(errno)))")
        }
    }
}

/// SHA-256 over a stream (OpenSSL EVP), for the stored file's digest in the manifest.
final class StreamingSHA256 {
    private let context: OpaquePointer

    init() {
        guard let context = EVP_MD_CTX_new(), EVP_DigestInit_ex(context, EVP_sha256(), nil) == 1 else {
            preconditionFailure("SHA-256 unavailable")
        }
        self.context = context
    }

    deinit { EVP_MD_CTX_free(context) }

    func update(_ bytes: [UInt8]) {
        guard !bytes.isEmpty else { return }
        let ok = bytes.withUnsafeBytes { EVP_DigestUpdate(context, $0.baseAddress, $0.count) }
        precondition(ok == 1, "SHA-256 update failed")
    }

    func finish() -> String {
        var digest = [UInt8](repeating: 0, count: 32)
        var length: UInt32 = 0
        precondition(EVP_DigestFinal_ex(context, &digest, &length) == 1, "SHA-256 final failed")
        return hex(digest)
    }
}

func hex(_ bytes: [UInt8]) -> String {
    let digits = Array("0123456789abcdef")
    var out = ""
    for byte in bytes {
        out.append(digits[Int(byte >> 4)])
        out.append(digits[Int(byte & 15)])
    }
    return out
}
