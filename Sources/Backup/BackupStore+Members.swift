import EventLoop
import Glibc

/// A directory-format backup (pg_dump -Fd) in the local store: `<id>.pcbd/`, one encrypted
/// `<name>.pcbk` per file pg_dump wrote. It is written as `<id>.pcbd.partial/` (each member
/// fsynced when complete), renamed to `<id>.pcbd` once all are, and the directory fsynced;
/// the manifest comes last, as for a single-file backup.
extension BackupStore {
    func memberDirectory(_ id: String) -> String { "\(directory)/\(id).pcbd" }

    public func memberWriter(for id: String, name: String) throws(BackupError) -> any BackupWriter {
        guard BackupManifest.File.isValidName(name) else { throw BackupError("invalid file name \"\(name)\" from pg_dump") }
        let partial = memberDirectory(id) + ".partial"
        if !Files.exists(partial) { try Files.makeDirectory(partial) }
        return try LocalWriter(member: "\(partial)/\(name).pcbk")
    }

    public func commitMembers(_ id: String) throws(BackupError) {
        let partial = memberDirectory(id) + ".partial"
        if !Files.exists(partial) { try Files.makeDirectory(partial) }
        try Files.fsyncDirectory(partial)
        try Files.rename(partial, memberDirectory(id))
        try Files.fsyncDirectory(directory)
    }

    public func memberReader(for id: String, name: String) throws(BackupError) -> any BackupSource {
        guard BackupManifest.File.isValidName(name) else { throw BackupError("invalid file name \"\(name)\" in the manifest") }
        return try FileSource(path: "\(memberDirectory(id))/\(name).pcbk")
    }
}
