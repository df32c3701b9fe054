/// A directory-format backup (pg_dump -Fd) in the S3-compatible store: one object
/// `<prefix><id>.pcbd/<name>.pcbk` per file pg_dump wrote, each its own multipart upload
/// (complete and size-checked when that file is), and the manifest put last. Until then the
/// objects are leftovers: the next run or prune deletes them (no manifest) and aborts their
/// incomplete uploads.
extension S3BackupStore {
    /// The id of a member object `<prefix><id>.pcbd/<name>.pcbk`, or nil.
    func memberID(of key: String) -> String? {
        guard key.hasPrefix(location.prefix), key.hasSuffix(".pcbk") else { return nil }
        let rest = key.dropFirst(location.prefix.count)
        guard let slash = rest.firstIndex(of: "/") else { return nil }
        let head = rest[..<slash]
        guard head.hasSuffix(".pcbd") else { return nil }
        let id = String(head.dropLast(5))
        let name = String(rest[rest.index(after: slash)...].dropLast(5))
        return BackupManifest.isValidID(id) && BackupManifest.File.isValidName(name) ? id : nil
    }

    func deleteMembers(_ client: S3Client, _ id: String) throws(BackupError) {
        for object in try listObjects(client, under: "\(id).pcbd/") where memberID(of: object.key) == id {
            _ = try client.expect(try client.request("DELETE", key: object.key), [200, 204, 404], "DELETE \(object.key)")
        }
    }

    public func memberWriter(for id: String, name: String) throws(BackupError) -> any BackupWriter {
        guard BackupManifest.File.isValidName(name) else { throw BackupError("invalid file name \"\(name)\" from pg_dump") }
        return try MultipartWriter(client: try client(), key: "\(id).pcbd/\(name).pcbk", partSize: partSize)
    }

    /// Nothing to rename: each member was completed (atomically) on its own, and the manifest,
    /// put next, is what makes the backup good.
    public func commitMembers(_ id: String) throws(BackupError) {}

    public func memberReader(for id: String, name: String) throws(BackupError) -> any BackupSource {
        guard BackupManifest.File.isValidName(name) else { throw BackupError("invalid file name \"\(name)\" in the manifest") }
        return try RangeSource(client: try client(), key: "\(id).pcbd/\(name).pcbk", pieceSize: min(partSize, 8 << 20))
    }
}
