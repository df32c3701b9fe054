import Auth
import BackupFormat
import EventLoop
import Glibc

/// `backup run --format directory`: `pg_dump -Fd -j N` into a private (0700) directory whose
/// files are followed as pg_dump writes them (`FollowedFile`): each is read behind pg_dump,
/// compressed, encrypted into its own stored stream and freed on disk (hole punching), so
/// only what was written since the last look (~20 ms) is ever plaintext on disk per file —
/// never a whole table. inotify says when pg_dump creates a file and when it closes it
/// (IN_CLOSE_WRITE: the file is complete, pg_backup_directory.c never reopens it); a file
/// closed is finished, committed and removed. After pg_dump exited 0, every member is
/// complete, an authenticated index of them is stored (`MemberIndex`), the members are
/// published and the manifest written last, listing every file with its sizes and SHA-256.
enum DirectoryDumpRunner {
    static let workPrefix = ".work-"

    static func run(_ job: BackupJob, key: BackupKey, progress: ((ProgressReport) -> Void)?) throws(BackupError) -> BackupManifest {
        let store = job.store
        let lockFD = try store.lock()
        defer { closeDescriptor(lockFD) }
        _ = try store.removeLeftovers()
        removeWorkLeftovers(store.lockDirectory)

        let backupID = Crypto.randomBytes(16)
        let id = hex(backupID)
        var manifest = BackupManifest(id: id, database: job.database, startedAt: unixSeconds(), endedAt: 0, status: .good)
        manifest.keyID = hex(key.keyID)
        manifest.format = "directory"
        manifest.jobs = Int64(job.jobs)
        let work = "\(store.lockDirectory)/\(workPrefix)\(id)"
        let dumpDirectory = "\(work)/dump"
        var followed: [String: FollowedFile] = [:]
        defer { Files.removeTree(work) }
        do throws(BackupError) {
            let pgDump = try findTool("pg_dump", binDir: job.pgBinDir)
            try Files.makeDirectory(work)
            guard chmod(work, 0o700) == 0 else { throw BackupError("could not make \(work) private") }
            try Files.makeDirectory(dumpDirectory)
            let watch = try DirectoryWatch(dumpDirectory)
            var done: [BackupManifest.File] = []
            var doneNames = Set<String>()
            var head: [UInt8] = []

            func startFollowing(_ name: String) throws(BackupError) {
                guard followed[name] == nil else { return }
                guard !doneNames.contains(name) else { throw BackupError("pg_dump wrote \(name) a second time") }
                followed[name] = try FollowedFile(name: name, directory: dumpDirectory, key: key, backupID: backupID,
                                                  level: job.compressionLevel, workers: job.compressionWorkers, store: store, id: id)
            }
            func finish(_ name: String) throws(BackupError) {
                guard let file = followed.removeValue(forKey: name) else { return }
                let entry = try file.finish()
                if name == "toc.dat" { head = file.head }
                manifest.compressedBytes += file.compressedBytes
                done.append(entry)
                doneNames.insert(name)
            }
            func handle(_ events: [DirectoryWatch.Event]) throws(BackupError) {
                for event in events {
                    switch event {
                    case .created(let name):
                        try startFollowing(name)
                    case .closedAfterWriting(let name):
                        // Our own descriptor is opened for writing too: its close (after
                        // `finish`) reports the name again, already done.
                        if doneNames.contains(name) { continue }
                        try startFollowing(name)
                        try finish(name)
                    case .overflow:
                        // Events were lost: pick up every file present; those still open are
                        // finished after pg_dump exits.
                        for name in try Files.list(dumpDirectory) where !doneNames.contains(name) { try startFollowing(name) }
                    }
                }
            }

            var arguments = ["-Fd", "-j", String(job.jobs), "-Z", "0", "-w", "--no-sync", "-f", dumpDirectory, "-d", job.connection.conninfo]
            var path = pgDump
            // If this process dies (SIGKILL), pg_dump must not go on writing plaintext that
            // nobody consumes: setpriv(1) gives it a parent-death signal.
            if access("/usr/bin/setpriv", X_OK) == 0 {
                arguments = ["--pdeathsig", "KILL", pgDump] + arguments
                path = "/usr/bin/setpriv"
            }
            let child = try ChildProcess(path: path, arguments: arguments,
                                         environment: childEnvironment(job.connection.environment, withoutLibpqVariables: true),
                                         feedsStdin: false)
            let started = monotonicNanoseconds()
            var lastReport = started
            var peak: Int64 = 0
            do throws(BackupError) {
                while !child.outputDescriptors.isEmpty {
                    var fds = child.outputDescriptors.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
                    fds.append(pollfd(fd: watch.fd, events: Int16(POLLIN), revents: 0))
                    _ = poll(&fds, nfds_t(fds.count), 20)
                    for entry in fds where entry.revents != 0 && entry.fd != watch.fd {
                        try child.readOutput(entry.fd) { _ in }
                    }
                    try handle(try watch.events())
                    // The plaintext on disk is sampled before it is consumed: what pg_dump
                    // wrote since the last look, the most that is ever there.
                    peak = max(peak, followed.values.reduce(0) { $0 + $1.allocatedBytes })
                    for file in followed.values { manifest.plaintextBytes += try file.follow() }
                    let now = monotonicNanoseconds()
                    if let progress, now - lastReport >= job.progressIntervalNanoseconds {
                        lastReport = now
                        progress(ProgressReport(bytes: manifest.plaintextBytes, elapsedNanoseconds: now - started,
                                                totalBytes: job.estimatedBytes, totalIsEstimate: true))
                    }
                }
            } catch {
                child.killNow()
                throw error
            }
            let status = child.waitStatus()
            guard status == 0 else {
                let detail = child.stderrString
                throw BackupError("pg_dump exited with status \(status)" + (detail.isEmpty ? "" : ": \(detail)"))
            }
            // pg_dump and its workers have exited: everything is closed and complete.
            try handle(try watch.events())
            for name in try Files.list(dumpDirectory) where !doneNames.contains(name) { try startFollowing(name) }
            for name in followed.keys.sorted() { try finish(name) }
            manifest.plaintextBytes = done.reduce(0) { $0 + $1.plaintextBytes }
            guard doneNames.contains("toc.dat") else { throw BackupError("pg_dump wrote no toc.dat") }
            if let parsed = DumpHeader.parse(head) {
                manifest.serverVersion = parsed.serverVersion
                manifest.pgDumpVersion = parsed.pgDumpVersion
            }
            manifest.files = done
            manifest.peakPlaintextOnDisk = peak
            manifest.storedBytes = done.reduce(0) { $0 + $1.storedBytes }
            let index = try storeIndex(done, key: key, backupID: backupID, store: store, id: id)
            manifest.storedBytes += index.storedBytes
            manifest.sha256 = index.sha256
            try store.commitMembers(id)
            manifest.endedAt = unixSeconds()
            manifest = manifest.sealed(with: key)
            try store.writeManifest(manifest)
            progress?(ProgressReport(bytes: manifest.plaintextBytes, elapsedNanoseconds: monotonicNanoseconds() - started))
            return manifest
        } catch {
            for file in followed.values { file.abort() }
            store.discard(id)
            var failed = manifest
            failed.status = .failed
            failed.endedAt = unixSeconds()
            failed.sha256 = ""
            failed.storedBytes = 0
            failed.files = []
            failed.error = String(error.description.prefix(4000))
            try? store.writeManifest(failed.sealed(with: key))
            throw error
        }
    }

    /// The authenticated index (`MemberIndex`), stored uncompressed as one more member.
    private static func storeIndex(_ files: [BackupManifest.File], key: BackupKey, backupID: [UInt8],
                                   store: any BackupStorage, id: String) throws(BackupError) -> BackupManifest.File {
        var encryptor: BackupEncryptor
        do {
            encryptor = try BackupEncryptor(key: key, backupID: backupID, salt: Crypto.randomBytes(32), compressed: false,
                                            member: MemberIndex.name)
        } catch { throw BackupError(error.description) }
        let plain = MemberIndex.render(files)
        let bytes = encryptor.header + encryptor.update(plain) + encryptor.finish()
        let writer = try store.memberWriter(for: id, name: MemberIndex.name)
        do {
            try writer.write(bytes)
            try writer.commit(storedBytes: Int64(bytes.count))
        } catch {
            writer.abort()
            throw error
        }
        let sha = StreamingSHA256()
        sha.update(bytes)
        return BackupManifest.File(name: MemberIndex.name, plaintextBytes: Int64(plain.count), storedBytes: Int64(bytes.count),
                                   sha256: sha.finish())
    }

    /// Work directories of runs that were killed: they may hold plaintext pg_dump wrote after
    /// its follower died. Called with the store's lock held, so no live run owns one.
    static func removeWorkLeftovers(_ directory: String) {
        for name in (try? Files.list(directory)) ?? [] where name.hasPrefix(workPrefix) {
            Files.removeTree("\(directory)/\(name)")
        }
    }
}

/// inotify on pg_dump's output directory: creations and closes after writing.
final class DirectoryWatch {
    enum Event: Equatable {
        case created(String)
        case closedAfterWriting(String)
        case overflow
    }

    let fd: Int32

    init(_ directory: String) throws(BackupError) {
        let fd = inotify_init1(Int32(IN_NONBLOCK | IN_CLOEXEC))
        guard fd >= 0 else { throw BackupError("inotify_init1: \(String(cString: strerror(errno)))") }
        guard inotify_add_watch(fd, directory, UInt32(IN_CREATE | IN_CLOSE_WRITE | IN_MOVED_TO)) >= 0 else {
            let message = String(cString: strerror(errno))
            closeDescriptor(fd)
            throw BackupError("inotify_add_watch \(directory): \(message)")
        }
        self.fd = fd
    }

    deinit { closeDescriptor(fd) }

    /// Everything queued (none when nothing happened).
    func events() throws(BackupError) -> [Event] {
        var result: [Event] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let descriptor = fd
            let count = buffer.withUnsafeMutableBytes { Glibc.read(descriptor, $0.baseAddress, $0.count) }
            if count < 0 {
                if errno == EAGAIN || errno == EINTR { return result }
                throw BackupError("reading inotify events: \(String(cString: strerror(errno)))")
            }
            if count == 0 { return result }
            result += Self.parse(Array(buffer[0..<count]))
        }
    }

    /// `struct inotify_event` records: wd (4), mask (4), cookie (4), len (4), name (len, NUL-padded).
    static func parse(_ bytes: [UInt8]) -> [Event] {
        var events: [Event] = []
        var position = 0
        func word(_ at: Int) -> UInt32 {
            UInt32(bytes[at]) | UInt32(bytes[at + 1]) << 8 | UInt32(bytes[at + 2]) << 16 | UInt32(bytes[at + 3]) << 24
        }
        while position + 16 <= bytes.count {
            let mask = word(position + 4)
            let length = Int(word(position + 12))
            guard position + 16 + length <= bytes.count else { break }
            let name = String(decoding: bytes[(position + 16)..<(position + 16 + length)].prefix { $0 != 0 }, as: UTF8.self)
            position += 16 + length
            if mask & UInt32(IN_Q_OVERFLOW) != 0 { events.append(.overflow); continue }
            if name.isEmpty { continue }
            if mask & UInt32(IN_CREATE | IN_MOVED_TO) != 0 { events.append(.created(name)) }
            if mask & UInt32(IN_CLOSE_WRITE) != 0 { events.append(.closedAfterWriting(name)) }
        }
        return events
    }
}
