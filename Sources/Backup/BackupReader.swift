import BackupFormat
import EventLoop
import Glibc

/// A stored backup read back: file → AES-256-GCM (each chunk only after its tag verified) →
/// zstd → plaintext, 1 MiB of file at a time. The last piece of plaintext is held back until
/// the whole file authenticated (final chunk seen, zstd frame complete, SHA-256 and backup id
/// as the manifest says): a consumer such as pg_restore never sees the end of an archive that
/// was cut short or altered, so it cannot finish (and commit) on it.
final class BackupStream {
    private let source: any BackupSource
    private let manifest: BackupManifest
    /// A directory-format backup's file this stream reads (nil: the single-file backup).
    private let member: BackupManifest.File?
    private var decryptor: BackupDecryptor
    private let decompressor: ZstdDecompressor
    private let sha = StreamingSHA256()
    private var held: [UInt8] = []
    private var ended = false
    private(set) var storedBytesRead: Int64 = 0
    private(set) var plaintextBytes: Int64 = 0

    private let checkSize: Bool

    /// `checkSize`: a member's plaintext size must be the manifest's (not for the index,
    /// whose size the manifest does not record).
    init(source: any BackupSource, manifest: BackupManifest, keys: [BackupKey],
         member: BackupManifest.File? = nil, checkSize: Bool = true) throws(BackupError) {
        self.checkSize = checkSize
        self.source = source
        self.manifest = manifest
        self.member = member
        decryptor = BackupDecryptor(keys: keys, member: member?.name)
        do { decompressor = try ZstdDecompressor() } catch { throw BackupError(error.description) }
    }

    /// The next piece of authenticated plaintext; nil at the (verified) end.
    func next() throws(BackupError) -> [UInt8]? {
        while !ended {
            let piece = try source.read()
            if piece.isEmpty {
                ended = true
                try finish()
                break
            }
            sha.update(piece)
            storedBytesRead += Int64(piece.count)
            let decrypted: [UInt8], plain: [UInt8]
            do { decrypted = try decryptor.update(piece) } catch { throw damaged(error) }
            if let header = decryptor.header, hex(header.backupID) != manifest.id {
                throw BackupError("the file holds backup \(hex(header.backupID)), not \(manifest.id)")
            }
            if decryptor.header?.compressed == false {
                plain = decrypted
            } else {
                do { plain = try decompressor.update(decrypted) } catch { throw damaged(error) }
            }
            if plain.isEmpty { continue }
            plaintextBytes += Int64(plain.count)
            let previous = held
            held = plain
            if !previous.isEmpty { return previous }
        }
        if held.isEmpty { return nil }
        defer { held = [] }
        return held
    }

    private func damaged(_ error: BackupFormatError) -> BackupError {
        if let member, !error.description.hasPrefix(member.name) {
            return BackupError("backup \(manifest.id) is damaged: \(member.name): \(error.description)")
        }
        return BackupError("backup \(manifest.id) is damaged: \(error.description)")
    }

    private func finish() throws(BackupError) {
        do { try decryptor.finish() } catch { throw damaged(error) }
        if decryptor.header?.compressed != false {
            do { try decompressor.finish() } catch { throw damaged(error) }
        }
        let digest = sha.finish()
        let expected = member?.sha256 ?? manifest.sha256
        guard digest == expected else {
            let what = member.map { "stored file \($0.name)" } ?? "stored file"
            throw BackupError("backup \(manifest.id): the \(what)'s SHA-256 \(digest) is not the manifest's \(expected)")
        }
        if let member, checkSize, plaintextBytes != member.plaintextBytes {
            throw BackupError("backup \(manifest.id): \(member.name) holds \(plaintextBytes) bytes, the manifest says \(member.plaintextBytes)")
        }
    }

    /// Reads (and authenticates) everything not yet read.
    func drain() throws(BackupError) {
        while try next() != nil {}
    }
}

public struct VerifyResult: Sendable {
    public var manifest: BackupManifest
    /// Entries `pg_restore --list` printed (the archive's table of contents).
    public var tocEntries: Int
    public var plaintextBytes: Int64
}

public enum BackupReader {
    /// `backup verify`: decrypt and decompress everything, check the SHA-256 and sizes against
    /// the manifest, and have `pg_restore --list` read the archive from a pipe. Writes nothing.
    public static func verify(store: any BackupStorage, id: String, keys: [BackupKey], pgBinDir: String?,
                              progress: ((ProgressReport) -> Void)? = nil) throws(BackupError) -> VerifyResult {
        let manifest = try store.goodManifest(id)
        try manifest.authenticate(keys: keys)
        if manifest.format == "directory" {
            return try DirectoryReader.verify(store: store, manifest: manifest, keys: keys, pgBinDir: pgBinDir, progress: progress)
        }
        let stream = try BackupStream(source: try store.reader(for: id), manifest: manifest, keys: keys)
        let pgRestore = try findTool("pg_restore", binDir: pgBinDir)
        let child = try ChildProcess(path: pgRestore, arguments: ["--list"],
                                     environment: childEnvironment([:], withoutLibpqVariables: false), feedsStdin: true)
        var newlines = 0
        let meter = ProgressMeter(total: manifest.storedBytes, report: progress)
        try child.pump(produce: { () throws(BackupError) -> [UInt8]? in
            let piece = try stream.next()
            meter.update(stream.storedBytesRead)
            return piece
        }, consume: { bytes in newlines += bytes.lazy.filter { $0 == 0x0A }.count })
        let status = child.waitStatus()
        // pg_restore --list stops reading after the table of contents: the rest is still
        // authenticated here.
        try stream.drain()
        guard status == 0 else {
            throw BackupError("pg_restore --list failed (status \(status)): \(child.stderrString)")
        }
        guard stream.plaintextBytes == manifest.plaintextBytes else {
            throw BackupError("backup \(id): \(stream.plaintextBytes) bytes of dump, the manifest says \(manifest.plaintextBytes)")
        }
        meter.done(stream.storedBytesRead)
        return VerifyResult(manifest: manifest, tocEntries: newlines, plaintextBytes: stream.plaintextBytes)
    }

    /// `backup restore`: stream the archive into `pg_restore --single-transaction -d TARGET`.
    /// On any damage pg_restore is killed before it has seen the end of the archive, so its
    /// single transaction rolls back: the target is left as it was, never half-restored.
    /// `jobs`: pg_restore's `-j` for a directory-format backup (nil = the backup's own).
    public static func restore(store: any BackupStorage, id: String, keys: [BackupKey], target: String, pgBinDir: String?,
                               jobs: Int? = nil,
                               progress: ((ProgressReport) -> Void)? = nil) throws(BackupError) -> BackupManifest {
        let manifest = try store.goodManifest(id)
        try manifest.authenticate(keys: keys)
        if manifest.format == "directory" {
            try DirectoryReader.restore(store: store, manifest: manifest, keys: keys, target: target, pgBinDir: pgBinDir,
                                        jobs: jobs ?? Int(manifest.jobs), progress: progress)
            return manifest
        }
        let stream = try BackupStream(source: try store.reader(for: id), manifest: manifest, keys: keys)
        let pgRestore = try findTool("pg_restore", binDir: pgBinDir)
        let child = try ChildProcess(path: pgRestore, arguments: ["--single-transaction", "--exit-on-error", "-w", "-d", target],
                                     environment: childEnvironment([:], withoutLibpqVariables: false), feedsStdin: true)
        let meter = ProgressMeter(total: manifest.storedBytes, report: progress)
        try child.pump(produce: { () throws(BackupError) -> [UInt8]? in
            let piece = try stream.next()
            meter.update(stream.storedBytesRead)
            return piece
        }, consume: { _ in })
        let status = child.waitStatus()
        guard status == 0 else {
            throw BackupError("pg_restore failed (status \(status)); its transaction was rolled back: \(child.stderrString)")
        }
        // pg_restore cannot finish without the held-back end of the archive, so everything was
        // read and authenticated; checked anyway, so a success is never reported otherwise.
        try stream.drain()
        meter.done(stream.storedBytesRead)
        return manifest
    }
}

/// Calls `report` at most once a second with bytes, rate and ETA.
final class ProgressMeter {
    private let total: Int64?
    private let report: ((ProgressReport) -> Void)?
    private let started = monotonicNanoseconds()
    private var last: Int64

    init(total: Int64?, report: ((ProgressReport) -> Void)?) {
        self.total = total
        self.report = report
        last = started
    }

    func update(_ bytes: Int64) {
        guard let report else { return }
        let now = monotonicNanoseconds()
        guard now - last >= 1_000_000_000 else { return }
        last = now
        report(ProgressReport(bytes: bytes, elapsedNanoseconds: now - started, totalBytes: total))
    }

    func done(_ bytes: Int64) {
        report?(ProgressReport(bytes: bytes, elapsedNanoseconds: monotonicNanoseconds() - started, totalBytes: total))
    }
}

public enum BackupPruner {
    /// `backup prune`: deletes what `RetentionPolicy.prune` names, under the store's lock, and
    /// cleans `.partial` leftovers. `database`: only that database's backups (the daemon's
    /// prune after a scheduled backup); nil = every database. Returns the ids deleted.
    /// Manifests that are not authentic under `keys` neither count nor go: what they say
    /// (database, date, status) cannot be believed, and deleting on their word is the attack.
    public static func prune(store: any BackupStorage, policy: RetentionPolicy, now: Int64, keys: [BackupKey],
                             database: String? = nil) throws(BackupError) -> [String] {
        let lockFD = try store.lock()
        defer { closeDescriptor(lockFD) }
        _ = try store.removeLeftovers()
        let (manifests, _) = try store.manifests()
        let stored = try store.storedIDs()
        // Only manifests whose file exists count as good: a good manifest without its file
        // must not be what keeps "the last good backup" alive.
        let present = manifests.filter { $0.isAuthentic(keys: keys) && (database == nil || $0.database == database) }
            .map { manifest -> BackupManifest in
            var checked = manifest
            if checked.status == .good && !stored.contains(manifest.id) { checked.status = .failed }
            return checked
        }
        DirectoryDumpRunner.removeWorkLeftovers(store.lockDirectory)
        let doomed = policy.prune(present, now: now)
        for id in doomed { try store.delete(id) }
        return doomed
    }
}
