import Auth
import BackupFormat
import EventLoop
import Glibc

/// Monotonic nanoseconds, for progress rates only (never for decisions).
func monotonicNanoseconds() -> Int64 {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return Int64(now.tv_sec) * 1_000_000_000 + Int64(now.tv_nsec)
}

func unixSeconds() -> Int64 { Int64(time(nil)) }

/// What a backup run needs; built by the CLI from the configuration.
public struct BackupJob: Sendable {
    public var store: BackupStore
    public var database: String
    public var connection: BackupConnection
    public var compressionLevel: Int32 = 3
    public var compressionWorkers: Int32 = 0
    public var pgBinDir: String?

    public init(store: BackupStore, database: String, connection: BackupConnection) {
        self.store = store
        self.database = database
        self.connection = connection
    }
}

/// `backup run`: pg_dump → zstd → AES-256-GCM → `<id>.pcbk.partial`, then fsync, rename,
/// fsync the directory, and the manifest written the same way. pg_dump's output is read from
/// its pipe in pieces of at most 1 MiB and goes straight through the compressor and encryptor
/// to the file: it is never whole in memory and never in a plaintext file.
public enum BackupRunner {
    /// The manifest of the good backup; a failure throws after removing the partial file and
    /// recording a failed manifest (status failed, never listed as good).
    public static func run(_ job: BackupJob, key: BackupKey,
                           progress: ((ProgressReport) -> Void)? = nil) throws(BackupError) -> BackupManifest {
        let store = job.store
        let lockFD = try store.lock()
        defer { closeDescriptor(lockFD) }
        _ = try store.removeLeftovers()

        let backupID = Crypto.randomBytes(16)
        let id = hex(backupID)
        var manifest = BackupManifest(id: id, database: job.database, startedAt: unixSeconds(), endedAt: 0, status: .good)
        manifest.keyID = hex(key.keyID)
        let partial = store.dataPath(id) + ".partial"
        var fd: Int32 = -1
        do throws(BackupError) {
            let pgDump = try findTool("pg_dump", binDir: job.pgBinDir)
            var encryptor: BackupEncryptor
            let compressor: ZstdCompressor
            do {
                encryptor = try BackupEncryptor(key: key, backupID: backupID, salt: Crypto.randomBytes(32), compressed: true)
                compressor = try ZstdCompressor(level: job.compressionLevel, workers: job.compressionWorkers)
            } catch { throw BackupError(error.description) }
            fd = try Files.create(partial)
            let sha = StreamingSHA256()
            let output = { (bytes: [UInt8]) throws(BackupError) in
                guard !bytes.isEmpty else { return }
                try Files.writeAll(fd, bytes, path: partial)
                sha.update(bytes)
                manifest.storedBytes += Int64(bytes.count)
            }
            try output(encryptor.header)

            // -Z 0: pg_dump's own zlib would leave zstd nothing to do. -w: never prompt.
            let child = try ChildProcess(path: pgDump, arguments: ["-Fc", "-Z", "0", "-w", "-d", job.connection.conninfo],
                                         environment: childEnvironment(job.connection.environment, withoutLibpqVariables: true),
                                         feedsStdin: false)
            var head: [UInt8] = []
            let started = monotonicNanoseconds()
            var lastReport = started
            try child.pump(produce: nil) { (bytes) throws(BackupError) in
                manifest.plaintextBytes += Int64(bytes.count)
                if head.count < 8192 && manifest.serverVersion.isEmpty {
                    head += bytes.prefix(8192 - head.count)
                    if let parsed = DumpHeader.parse(head) {
                        manifest.serverVersion = parsed.serverVersion
                        manifest.pgDumpVersion = parsed.pgDumpVersion
                    }
                }
                let compressed = try compress(compressor, bytes)
                manifest.compressedBytes += Int64(compressed.count)
                try output(encryptor.update(compressed))
                let now = monotonicNanoseconds()
                if let progress, now - lastReport >= 1_000_000_000 {
                    lastReport = now
                    progress(ProgressReport(bytes: manifest.plaintextBytes, elapsedNanoseconds: now - started))
                }
            }
            let status = child.waitStatus()
            guard status == 0 else {
                let detail = child.stderrString
                throw BackupError("pg_dump exited with status \(status)" + (detail.isEmpty ? "" : ": \(detail)"))
            }
            guard manifest.plaintextBytes > 0 else { throw BackupError("pg_dump wrote nothing") }
            let tail = try compress(compressor, nil)
            manifest.compressedBytes += Int64(tail.count)
            try output(encryptor.update(tail))
            try output(encryptor.finish())
            try Files.fsync(fd, path: partial)
            closeDescriptor(fd)
            fd = -1
            try Files.rename(partial, store.dataPath(id))
            try Files.fsyncDirectory(store.directory)
            manifest.sha256 = sha.finish()
            manifest.endedAt = unixSeconds()
            try Files.writeAtomically(manifest.encoded(), to: store.manifestPath(id), directory: store.directory)
            progress?(ProgressReport(bytes: manifest.plaintextBytes, elapsedNanoseconds: monotonicNanoseconds() - started))
            return manifest
        } catch {
            if fd >= 0 { closeDescriptor(fd) }
            Files.remove(partial)
            // The stored file may already carry its final name if only the manifest failed:
            // without a good manifest it is not a backup, so it goes too.
            Files.remove(store.dataPath(id))
            var failed = manifest
            failed.status = .failed
            failed.endedAt = unixSeconds()
            failed.sha256 = ""
            failed.storedBytes = 0
            failed.error = String(error.description.prefix(4000))
            // Best effort: on a full disk even this may fail; nothing is listed as good anyway.
            try? Files.writeAtomically(failed.encoded(), to: store.manifestPath(id), directory: store.directory)
            throw error
        }
    }
}

/// zstd with its error as a `BackupError`; nil input ends the frame.
private func compress(_ compressor: ZstdCompressor, _ bytes: [UInt8]?) throws(BackupError) -> [UInt8] {
    do {
        if let bytes { return try compressor.update(bytes) }
        return try compressor.finish()
    } catch {
        throw BackupError(error.description)
    }
}
