import EventLoop
import Glibc

/// Where backups are kept: the local directory (`BackupStore`) or an S3-compatible bucket
/// (`S3BackupStore`). Both keep `<id>.pcbk` (the encrypted dump) and `<id>.json` (its
/// manifest) side by side, and publish the data before the manifest, so a good manifest
/// always names a whole stored file.
public protocol BackupStorage: Sendable {
    /// Where, for messages (never credentials).
    var describe: String { get }
    /// A local directory holding `.lock`, which `run` and `prune` hold exclusively.
    var lockDirectory: String { get }
    /// Every manifest, oldest first; unreadable ones are reported, not skipped silently.
    func manifests() throws(BackupError) -> (manifests: [BackupManifest], problems: [String])
    /// The ids whose stored file exists.
    func storedIDs() throws(BackupError) -> Set<String>
    /// A good manifest whose stored file exists; otherwise an error saying why not.
    func goodManifest(_ id: String) throws(BackupError) -> BackupManifest
    /// Removes what an interrupted run left (call with the lock held); the names removed.
    func removeLeftovers() throws(BackupError) -> [String]
    /// Deletes a backup: the manifest first (so it stops being good), then the file.
    func delete(_ id: String) throws(BackupError)
    /// Removes a stored file that has no good manifest (a failed run's), if any.
    func discard(_ id: String)
    func writer(for id: String) throws(BackupError) -> any BackupWriter
    func writeManifest(_ manifest: BackupManifest) throws(BackupError)
    func reader(for id: String) throws(BackupError) -> any BackupSource
    /// File `name` of directory-format backup `id`, invisible until `commitMembers`.
    func memberWriter(for id: String, name: String) throws(BackupError) -> any BackupWriter
    /// Publishes every member of `id` written so far (each already committed); the manifest
    /// still comes after.
    func commitMembers(_ id: String) throws(BackupError)
    func memberReader(for id: String, name: String) throws(BackupError) -> any BackupSource
}

/// The stored file being written. Nothing is visible under the final name before `commit`.
public protocol BackupWriter: AnyObject {
    func write(_ bytes: [UInt8]) throws(BackupError)
    /// Makes the file durable under its final name and checks that `storedBytes` arrived.
    func commit(storedBytes: Int64) throws(BackupError)
    /// Best effort: removes whatever was written.
    func abort()
}

/// The stored file read back in bounded pieces; empty at the end.
public protocol BackupSource: AnyObject {
    func read() throws(BackupError) -> [UInt8]
}

extension BackupStorage {
    /// An exclusive lock on `<lockDirectory>/.lock` (flock), so two runs or a run and a prune
    /// never clean up each other's files. Released when the returned descriptor is closed.
    func lock() throws(BackupError) -> Int32 {
        try Files.makeDirectory(lockDirectory)
        let path = "\(lockDirectory)/.lock"
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

/// The local-directory store: `<id>.pcbk`, `<id>.json`, `<name>.partial` while either is
/// being written, `.lock` held by whoever writes or deletes.
public struct BackupStore: BackupStorage {
    public let directory: String

    public init(directory: String) { self.directory = directory }

    public var describe: String { directory }
    public var lockDirectory: String { directory }

    func dataPath(_ id: String) -> String { "\(directory)/\(id).pcbk" }
    func manifestPath(_ id: String) -> String { "\(directory)/\(id).json" }

    public func manifests() throws(BackupError) -> (manifests: [BackupManifest], problems: [String]) {
        var result: [BackupManifest] = []
        var problems: [String] = []
        for name in try Files.list(directory) where name.hasSuffix(".json") {
            let id = String(name.dropLast(5))
            guard BackupManifest.isValidID(id) else { continue }
            do {
                let manifest = try BackupManifest.decode(try Files.readWhole("\(directory)/\(name)", limit: BackupManifest.sizeLimit))
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

    public func storedIDs() throws(BackupError) -> Set<String> {
        Set(try Files.list(directory).filter { $0.hasSuffix(".pcbk") || $0.hasSuffix(".pcbd") }.map { String($0.dropLast(5)) })
    }

    public func goodManifest(_ id: String) throws(BackupError) -> BackupManifest {
        guard BackupManifest.isValidID(id) else { throw BackupError("\"\(id)\" is not a backup id (32 hex digits)") }
        guard Files.exists(manifestPath(id)) else { throw BackupError("no backup \(id) in \(directory)") }
        let manifest = try BackupManifest.decode(try Files.readWhole(manifestPath(id), limit: BackupManifest.sizeLimit))
        guard manifest.id == id else { throw BackupError("manifest \(id).json names backup \(manifest.id)") }
        guard manifest.status == .good else {
            throw BackupError("backup \(id) is not good (status \(manifest.status.rawValue): \(manifest.error))")
        }
        if manifest.format == "directory" {
            guard Files.exists(memberDirectory(id)) else { throw BackupError("backup \(id): its directory \(id).pcbd is missing") }
        } else {
            guard Files.exists(dataPath(id)) else { throw BackupError("backup \(id): its file \(id).pcbk is missing") }
        }
        return manifest
    }

    /// `.partial` leftovers of an interrupted run (a crash or SIGKILL leaves them): files, and
    /// the `<id>.pcbd.partial` directories of directory-format runs.
    public func removeLeftovers() throws(BackupError) -> [String] {
        var removed: [String] = []
        for name in try Files.list(directory) where name.hasSuffix(".partial") {
            Files.removeTree("\(directory)/\(name)")
            removed.append(name)
        }
        if !removed.isEmpty { try Files.fsyncDirectory(directory) }
        return removed
    }

    public func delete(_ id: String) throws(BackupError) {
        Files.remove(manifestPath(id))
        try Files.fsyncDirectory(directory)
        Files.remove(dataPath(id))
        Files.removeTree(memberDirectory(id))
        try Files.fsyncDirectory(directory)
    }

    public func discard(_ id: String) {
        Files.remove(dataPath(id) + ".partial")
        Files.remove(dataPath(id))
        Files.removeTree(memberDirectory(id) + ".partial")
        Files.removeTree(memberDirectory(id))
    }

    public func writer(for id: String) throws(BackupError) -> any BackupWriter {
        try LocalWriter(path: dataPath(id), directory: directory)
    }

    public func writeManifest(_ manifest: BackupManifest) throws(BackupError) {
        try Files.writeAtomically(manifest.encoded(), to: manifestPath(manifest.id), directory: directory)
    }

    public func reader(for id: String) throws(BackupError) -> any BackupSource {
        try FileSource(path: dataPath(id))
    }
}

/// A stored file, fsynced and its size checked at `commit`. Published: written as
/// `<path>.partial`, renamed to `path` at commit and the directory fsynced (a custom-format
/// backup's `<id>.pcbk`). Not published: written at `path` inside a directory that becomes
/// visible with its own rename (a member of `<id>.pcbd.partial/`, `commitMembers`).
final class LocalWriter: BackupWriter {
    private let written: String
    private let publish: (path: String, directory: String)?
    private var fd: Int32

    init(path: String, directory: String) throws(BackupError) {
        written = path + ".partial"
        publish = (path, directory)
        fd = try Files.create(written)
    }

    init(member path: String) throws(BackupError) {
        written = path
        publish = nil
        fd = try Files.create(path)
    }

    deinit { if fd >= 0 { closeDescriptor(fd) } }

    func write(_ bytes: [UInt8]) throws(BackupError) {
        try Files.writeAll(fd, bytes, path: written)
    }

    func commit(storedBytes: Int64) throws(BackupError) {
        try Files.fsync(fd, path: written)
        closeDescriptor(fd)
        fd = -1
        guard Files.size(written) == storedBytes else {
            throw BackupError("\(written) holds \(Files.size(written) ?? -1) bytes, \(storedBytes) were written")
        }
        if let publish {
            try Files.rename(written, publish.path)
            try Files.fsyncDirectory(publish.directory)
        }
    }

    func abort() {
        if fd >= 0 { closeDescriptor(fd); fd = -1 }
        Files.remove(written)
    }
}

final class FileSource: BackupSource {
    private let fd: Int32
    private let path: String

    init(path: String) throws(BackupError) {
        self.path = path
        fd = try Files.openForReading(path)
    }

    deinit { closeDescriptor(fd) }

    func read() throws(BackupError) -> [UInt8] {
        try Files.read(fd, count: ChildProcess.readSize, path: path)
    }
}
