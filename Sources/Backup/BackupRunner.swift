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

/// pg_dump's archive format (`-Fc` or `-Fd`).
public enum DumpFormat: String, Sendable {
    case custom
    case directory
}

/// What a backup run needs; built by the CLI from the configuration.
public struct BackupJob: Sendable {
    public var store: any BackupStorage
    public var database: String
    public var connection: BackupConnection
    public var compressionLevel: Int32 = 3
    public var compressionWorkers: Int32 = 0
    public var pgBinDir: String?
    /// How often `progress` is called during the dump.
    public var progressIntervalNanoseconds: Int64 = 1_000_000_000
    /// The expected dump size (the last good backup's), for an ETA; nil = unknown.
    public var estimatedBytes: Int64?
    /// pg_dump's archive format: custom (one stream) or directory (`-Fd -j jobs`).
    public var format: DumpFormat = .custom
    /// pg_dump's `-j` with the directory format.
    public var jobs: Int = 1

    public init(store: any BackupStorage, database: String, connection: BackupConnection) {
        self.store = store
        self.database = database
        self.connection = connection
    }
}

/// `backup run`: pg_dump → zstd → AES-256-GCM → `<id>.pcbk.partial`, then fsync, rename,
/// fsync the directory, and the manifest written the same way. pg_dump's output is read from
/// its pipe in pieces of at most 1 MiB and goes through the compressor and encryptor threads
/// (`BackupPipeline`, bounded hand-offs) to the file: it is never whole in memory and never
/// in a plaintext file.
public enum BackupRunner {
    /// The manifest of the good backup; a failure throws after removing the partial file and
    /// recording a failed manifest (status failed, never listed as good).
    public static func run(_ job: BackupJob, key: BackupKey,
                           progress: ((ProgressReport) -> Void)? = nil) throws(BackupError) -> BackupManifest {
        if job.format == .directory { return try DirectoryDumpRunner.run(job, key: key, progress: progress) }
        let store = job.store
        let lockFD = try store.lock()
        defer { closeDescriptor(lockFD) }
        _ = try store.removeLeftovers()
        DirectoryDumpRunner.removeWorkLeftovers(store.lockDirectory)

        let backupID = Crypto.randomBytes(16)
        let id = hex(backupID)
        var manifest = BackupManifest(id: id, database: job.database, startedAt: unixSeconds(), endedAt: 0, status: .good)
        manifest.keyID = hex(key.keyID)
        var writer: (any BackupWriter)?
        var pipeline: BackupPipeline?
        do throws(BackupError) {
            let pgDump = try findTool("pg_dump", binDir: job.pgBinDir)
            let encryptor: BackupEncryptor
            let compressor: ZstdCompressor
            do {
                encryptor = try BackupEncryptor(key: key, backupID: backupID, salt: Crypto.randomBytes(32), compressed: true)
                compressor = try ZstdCompressor(level: job.compressionLevel, workers: job.compressionWorkers)
            } catch { throw BackupError(error.description) }
            let sink = try store.writer(for: id)
            writer = sink

            // -Z 0: pg_dump's own zlib would leave zstd nothing to do. -w: never prompt.
            let child = try ChildProcess(path: pgDump, arguments: ["-Fc", "-Z", "0", "-w", "-d", job.connection.conninfo],
                                         environment: childEnvironment(job.connection.environment, withoutLibpqVariables: true),
                                         feedsStdin: false)
            // Compression and sealing run on their own threads beside this one, which only
            // reads pg_dump's pipe (see BackupPipeline for why).
            let stages = BackupPipeline(compressor: compressor, encryptor: encryptor, sink: sink)
            pipeline = stages
            stages.start()
            var head: [UInt8] = []
            // Pipe reads (a few KiB to 1 MiB each, as pg_dump's writes arrive) are coalesced
            // into pieces of about `pieceSize`: fewer hand-offs between the threads.
            var batch: [UInt8] = []
            batch.reserveCapacity(BackupPipeline.pieceSize + ChildProcess.readSize)
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
                batch += bytes
                if batch.count >= BackupPipeline.pieceSize {
                    try stages.feed(batch)
                    batch.removeAll(keepingCapacity: true)
                }
                let now = monotonicNanoseconds()
                if let progress, now - lastReport >= job.progressIntervalNanoseconds {
                    lastReport = now
                    progress(ProgressReport(bytes: manifest.plaintextBytes, elapsedNanoseconds: now - started,
                                            totalBytes: job.estimatedBytes, totalIsEstimate: true))
                }
            }
            let status = child.waitStatus()
            guard status == 0 else {
                let detail = child.stderrString
                throw BackupError("pg_dump exited with status \(status)" + (detail.isEmpty ? "" : ": \(detail)"))
            }
            guard manifest.plaintextBytes > 0 else { throw BackupError("pg_dump wrote nothing") }
            try stages.feed(batch)
            let totals = try stages.finish()
            manifest.compressedBytes = totals.compressedBytes
            manifest.storedBytes = totals.storedBytes
            // Local: fsync, rename, fsync the directory. S3: complete the upload, check its size.
            try sink.commit(storedBytes: manifest.storedBytes)
            manifest.sha256 = totals.sha256
            manifest.endedAt = unixSeconds()
            manifest = manifest.sealed(with: key)
            try store.writeManifest(manifest)
            progress?(ProgressReport(bytes: manifest.plaintextBytes, elapsedNanoseconds: monotonicNanoseconds() - started))
            return manifest
        } catch {
            // The stages stop (and are joined) before the sink they write to is removed.
            pipeline?.abort()
            writer?.abort()
            // The stored file may already carry its final name if only the manifest failed:
            // without a good manifest it is not a backup, so it goes too.
            store.discard(id)
            var failed = manifest
            failed.status = .failed
            failed.endedAt = unixSeconds()
            failed.sha256 = ""
            failed.storedBytes = 0
            failed.error = String(error.description.prefix(4000))
            // Best effort: on a full disk or with the storage unreachable even this may fail;
            // nothing is listed as good anyway.
            try? store.writeManifest(failed.sealed(with: key))
            throw error
        }
    }
}
