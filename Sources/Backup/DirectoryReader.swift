import Auth
import BackupFormat
import EventLoop
import Glibc

/// Reading a directory-format backup back (docs/BACKUP.md, *Directory format*).
///
/// pg_restore reads a directory archive only from a directory (pg_backup_directory.c
/// `InitArchiveFmt_Directory` opens `<dir>/toc.dat`; `_PrintFileData` opens `<dir>/<file>` per
/// TOC entry, `_LoadLOs` `blobs.toc` and each `blob_<oid>.dat`), in an order chosen at
/// restore time. So each stored file is served through a FIFO of the same name in a private
/// (0700) directory: when pg_restore opens one, that file is decrypted and decompressed from
/// storage straight into the FIFO — no plaintext on disk. Every file is first read whole and
/// authenticated (with the authenticated index against the manifest), before pg_restore
/// starts, so a damaged backup leaves the target untouched; `-j` cannot use
/// `--single-transaction`, so this pre-pass is what keeps a restore all or nothing.
enum DirectoryReader {
    /// Every member authenticated, sizes and SHA-256 as the manifest says, and the manifest's
    /// list equal to the authenticated index.
    static func authenticateAll(store: any BackupStorage, manifest: BackupManifest, keys: [BackupKey],
                                meter: ProgressMeter) throws(BackupError) -> Int64 {
        guard manifest.files.contains(where: { $0.name == "toc.dat" }) else {
            throw BackupError("backup \(manifest.id): the manifest lists no toc.dat")
        }
        var storedRead: Int64 = 0
        // The index: its SHA-256 is the manifest's top-level sha256.
        let indexFile = BackupManifest.File(name: MemberIndex.name, plaintextBytes: -1, storedBytes: 0, sha256: manifest.sha256)
        let indexStream = try BackupStream(source: try store.memberReader(for: manifest.id, name: MemberIndex.name),
                                           manifest: manifest, keys: keys, member: indexFile, checkSize: false)
        var index: [UInt8] = []
        while let piece = try indexStream.next() {
            index += piece
            guard index.count <= BackupManifest.sizeLimit else { throw BackupError("backup \(manifest.id): the index is larger than 32 MiB") }
        }
        try MemberIndex.check(index, against: manifest.files, id: manifest.id)
        storedRead += indexStream.storedBytesRead
        for file in manifest.files {
            let stream = try BackupStream(source: try store.memberReader(for: manifest.id, name: file.name), manifest: manifest,
                                          keys: keys, member: file)
            while try stream.next() != nil { meter.update(storedRead + stream.storedBytesRead) }
            storedRead += stream.storedBytesRead
        }
        return storedRead
    }

    static func verify(store: any BackupStorage, manifest: BackupManifest, keys: [BackupKey], pgBinDir: String?,
                       progress: ((ProgressReport) -> Void)?) throws(BackupError) -> VerifyResult {
        let meter = ProgressMeter(total: manifest.storedBytes, report: progress)
        let stored = try authenticateAll(store: store, manifest: manifest, keys: keys, meter: meter)
        let pgRestore = try findTool("pg_restore", binDir: pgBinDir)
        var newlines = 0
        try withServedDirectory(store: store, manifest: manifest, keys: keys) { (directory, server) throws(BackupError) in
            let child = try ChildProcess(path: pgRestore, arguments: ["--list", "-F", "d", directory],
                                         environment: childEnvironment([:], withoutLibpqVariables: false), feedsStdin: false)
            try server.run(child) { bytes in newlines += bytes.lazy.filter { $0 == 0x0A }.count }
            let status = child.waitStatus()
            guard status == 0 else { throw BackupError("pg_restore --list failed (status \(status)): \(child.stderrString)") }
        }
        meter.done(stored)
        return VerifyResult(manifest: manifest, tocEntries: newlines, plaintextBytes: manifest.plaintextBytes)
    }

    static func restore(store: any BackupStorage, manifest: BackupManifest, keys: [BackupKey], target: String, pgBinDir: String?,
                        jobs: Int, progress: ((ProgressReport) -> Void)?) throws(BackupError) {
        let meter = ProgressMeter(total: manifest.storedBytes * 2, report: progress)
        let stored = try authenticateAll(store: store, manifest: manifest, keys: keys, meter: meter)
        let pgRestore = try findTool("pg_restore", binDir: pgBinDir)
        try withServedDirectory(store: store, manifest: manifest, keys: keys) { (directory, server) throws(BackupError) in
            // -F d: named explicitly, because format discovery (pg_backup_archiver.c
            // _discoverArchiveFormat) insists that toc.dat be a regular file; ours is a FIFO.
            let child = try ChildProcess(path: pgRestore,
                                         arguments: ["-F", "d", "-j", String(max(1, jobs)), "--exit-on-error", "-w", "-d", target, directory],
                                         environment: childEnvironment([:], withoutLibpqVariables: false), feedsStdin: false)
            server.progress = { meter.update(stored + $0) }
            try server.run(child) { _ in }
            let status = child.waitStatus()
            guard status == 0 else { throw BackupError("pg_restore failed (status \(status)): \(child.stderrString)") }
        }
        meter.done(stored * 2)
    }

    /// A private directory with one FIFO per file, served while `body` runs; removed after.
    private static func withServedDirectory(store: any BackupStorage, manifest: BackupManifest, keys: [BackupKey],
                                            _ body: (String, FifoServer) throws(BackupError) -> Void) throws(BackupError) {
        try Files.makeDirectory(store.lockDirectory)
        let directory = "\(store.lockDirectory)/.restore-\(hex(Crypto.randomBytes(8)))"
        guard mkdir(directory, 0o700) == 0 else {
            throw BackupError("could not create \(directory): \(String(cString: strerror(errno)))")
        }
        defer { Files.removeTree(directory) }
        let server = try FifoServer(directory: directory, store: store, manifest: manifest, keys: keys)
        try body(directory, server)
    }
}

/// Serves each file of a directory-format backup through a FIFO `<directory>/<name>`, from the
/// moment a reader opens it. Readers are found by trying a non-blocking open for writing
/// (which fails with ENXIO while nobody reads) every few milliseconds; a FIFO being served is
/// written as it drains (poll POLLOUT). When a file was served to its end (or its reader went
/// away), a fresh FIFO is renamed over the name: the reader still holding the old one sees end
/// of file, and a later open of the same name (pg_restore reading a file twice) is served again
/// from the start, never the tail of an earlier serving.
final class FifoServer {
    private final class Serving {
        let fd: Int32
        let stream: BackupStream
        var pending: [UInt8] = []
        var offset = 0
        init(fd: Int32, stream: BackupStream) {
            self.fd = fd
            self.stream = stream
        }
    }

    private let directory: String
    private let store: any BackupStorage
    private let manifest: BackupManifest
    private let keys: [BackupKey]
    private var waiting: [String]
    private var serving: [String: Serving] = [:]
    /// Stored bytes served so far, for progress.
    private var served: Int64 = 0
    var progress: ((Int64) -> Void)?

    init(directory: String, store: any BackupStorage, manifest: BackupManifest, keys: [BackupKey]) throws(BackupError) {
        self.directory = directory
        self.store = store
        self.manifest = manifest
        self.keys = keys
        waiting = manifest.files.map(\.name)
        signal(SIGPIPE, SIG_IGN)
        for name in waiting {
            guard BackupManifest.File.isValidName(name), mkfifo("\(directory)/\(name)", 0o600) == 0 else {
                throw BackupError("could not create the FIFO \(directory)/\(name): \(String(cString: strerror(errno)))")
            }
        }
    }

    deinit { for entry in serving.values { closeDescriptor(entry.fd) } }

    /// Serves until the child exited (its output closed); any failure kills it.
    func run(_ child: ChildProcess, stdout: ([UInt8]) -> Void) throws(BackupError) {
        do throws(BackupError) {
            while !child.outputDescriptors.isEmpty {
                try acceptReaders()
                var fds = child.outputDescriptors.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
                let names = serving.keys.sorted()
                fds += names.compactMap { serving[$0].map { pollfd(fd: $0.fd, events: Int16(POLLOUT), revents: 0) } }
                _ = poll(&fds, nfds_t(fds.count), 5)
                for entry in fds where entry.revents != 0 {
                    if let name = names.first(where: { serving[$0]?.fd == entry.fd }) {
                        try feed(name)
                    } else {
                        try child.readOutput(entry.fd, consume: stdout)
                    }
                }
                progress?(served)
            }
        } catch {
            child.killNow()
            throw error
        }
    }

    /// Sweeps so far; every `fullSweepEvery`-th tries every waiting name.
    private var sweeps = 0
    static let fullSweepEvery = 64
    static let blobWindow = 8

    /// The names to try now. pg_restore reads large objects one after another in the order of
    /// blobs.toc (pg_backup_directory.c `_LoadLOs`), which is the order pg_dump closed them
    /// (`_EndLO` closes the file, then appends its line) and so the manifest's. With thousands
    /// of large objects, trying every FIFO every 5 ms would cost more than serving them; so a
    /// sweep tries every other file but only the next few `blob_*.dat` in that order, and every
    /// `fullSweepEvery`-th sweep (~0.3 s) tries all, so an order that differs costs time, never
    /// a hang.
    private func candidates() -> [String] {
        sweeps += 1
        if sweeps % Self.fullSweepEvery == 0 { return waiting }
        var blobs = 0
        return waiting.filter { name in
            guard name.hasPrefix("blob_") else { return true }
            blobs += 1
            return blobs <= Self.blobWindow
        }
    }

    private func acceptReaders() throws(BackupError) {
        let tried = Set(candidates())
        var still: [String] = []
        for name in waiting {
            guard tried.contains(name) else {
                still.append(name)
                continue
            }
            let fd = open("\(directory)/\(name)", O_WRONLY | O_NONBLOCK | O_CLOEXEC)
            if fd < 0 {
                guard errno == ENXIO || errno == EINTR else {
                    throw BackupError("could not open the FIFO \(name): \(String(cString: strerror(errno)))")
                }
                still.append(name)
                continue
            }
            guard let file = manifest.files.first(where: { $0.name == name }) else { closeDescriptor(fd); continue }
            let stream: BackupStream
            do {
                stream = try BackupStream(source: try store.memberReader(for: manifest.id, name: name), manifest: manifest,
                                          keys: keys, member: file)
            } catch {
                closeDescriptor(fd)
                throw error
            }
            serving[name] = Serving(fd: fd, stream: stream)
        }
        waiting = still
    }

    /// Writes as much as the FIFO takes; at the end of the file (or EPIPE) re-offers the name.
    private func feed(_ name: String) throws(BackupError) {
        guard let entry = serving[name] else { return }
        while true {
            if entry.offset == entry.pending.count {
                let before = entry.stream.storedBytesRead
                guard let next = try entry.stream.next() else { return try renew(name) }
                served += entry.stream.storedBytesRead - before
                entry.pending = next
                entry.offset = 0
                if next.isEmpty { continue }
            }
            let start = entry.offset
            let written = entry.pending.withUnsafeBytes { Glibc.write(entry.fd, $0.baseAddress! + start, $0.count - start) }
            if written < 0 {
                if errno == EAGAIN || errno == EINTR { return }
                // EPIPE: the reader closed early (pg_restore reads toc.dat only as far as the TOC).
                return try renew(name)
            }
            entry.offset += written
        }
    }

    private func renew(_ name: String) throws(BackupError) {
        if let entry = serving.removeValue(forKey: name) { closeDescriptor(entry.fd) }
        let path = "\(directory)/\(name)"
        let fresh = "\(directory)/.next-\(name)"
        guard mkfifo(fresh, 0o600) == 0, rename(fresh, path) == 0 else {
            throw BackupError("could not renew the FIFO \(name): \(String(cString: strerror(errno)))")
        }
        waiting.append(name)
    }
}
