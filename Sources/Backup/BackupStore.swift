import EventLoop
import Glibc

/// The local-directory store: `<id>.pcbk` (the encrypted dump), `<id>.json` (its manifest),
/// `<name>.partial` while either is being written, `.lock` held by whoever writes or deletes.
public struct BackupStore: Sendable {
    public let directory: String

    public init(directory: String) { self.directory = directory }

    func dataPath(_ id: String) -> String { "\(directory)/\(id).pcbk" }
    func manifestPath(_ id: String) -> String { "\(directory)/\(id).json" }

    /// Every manifest, oldest first. Unreadable manifests are reported, not skipped silently.
    public func manifests() throws(BackupError) -> (manifests: [BackupManifest], problems: [String]) {
        var result: [BackupManifest] = []
        var problems: [String] = []
        for name in try Files.list(directory) where name.hasSuffix(".json") {
            let id = String(name.dropLast(5))
            guard BackupManifest.isValidID(id) else { continue }
            do {
                let manifest = try BackupManifest.decode(try Files.readWhole("\(directory)/\(name)"))
                guard manifest.id == id else {
                    problems.append("\(name): names backup \(manifest.id)")
                    continue
                }
                result.append(manifest)
            } catch {
                problems.append("\(name): \(error.description)")
            }
        }
        return (result.sorted { ($0.startedAt, $0.id) < ($1.startedAt, $1.id) }, problems)
    }

    /// Whether `<id>.pcbk` exists (a good manifest without it is reported as such by `list`).
    public func hasStoredFile(_ id: String) -> Bool { Files.exists(dataPath(id)) }

    /// A good manifest whose stored file exists; otherwise an error saying why not.
    public func goodManifest(_ id: String) throws(BackupError) -> BackupManifest {
        guard BackupManifest.isValidID(id) else { throw BackupError("\"\(id)\" is not a backup id (32 hex digits)") }
        guard Files.exists(manifestPath(id)) else { throw BackupError("no backup \(id) in \(directory)") }
        let manifest = try BackupManifest.decode(try Files.readWhole(manifestPath(id)))
        guard manifest.id == id else { throw BackupError("manifest \(id).json names backup \(manifest.id)") }
        guard manifest.status == .good else {
            throw BackupError("backup \(id) is not good (status \(manifest.status.rawValue): \(manifest.error))")
        }
        guard Files.exists(dataPath(id)) else { throw BackupError("backup \(id): its file \(id).pcbk is missing") }
        return manifest
    }

    /// Removes `.partial` leftovers of an interrupted run (a crash or SIGKILL leaves them); call
    /// with the lock held. Returns the names removed.
    func removeLeftovers() throws(BackupError) -> [String] {
        var removed: [String] = []
        for name in try Files.list(directory) where name.hasSuffix(".partial") {
            Files.remove("\(directory)/\(name)")
            removed.append(name)
        }
        if !removed.isEmpty { try Files.fsyncDirectory(directory) }
        return removed
    }

    /// Deletes a backup: the manifest first (so it stops being listed as good), then the file.
    func delete(_ id: String) throws(BackupError) {
        Files.remove(manifestPath(id))
        try Files.fsyncDirectory(directory)
        Files.remove(dataPath(id))
        try Files.fsyncDirectory(directory)
    }

    /// An exclusive lock on `<directory>/.lock` (flock), so two runs or a run and a prune never
    /// clean up each other's files. Released when the returned descriptor is closed.
    func lock() throws(BackupError) -> Int32 {
        try Files.makeDirectory(directory)
        let path = "\(directory)/.lock"
        let fd: Int32
        do { fd = try syscallValue { open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0o600) } } catch {
            throw Files.message("could not open", path, error)
        }
        if flock(fd, LOCK_EX | LOCK_NB) != 0 {
            closeDescriptor(fd)
            throw BackupError("another backup run or prune holds \(path)")
        }
        return fd
    }
}
