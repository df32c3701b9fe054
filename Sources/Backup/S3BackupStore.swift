/// The S3-compatible store: `<prefix><id>.pcbk` written by a multipart upload (parts of
/// `partSize` bytes, so at most one part is ever in memory), and `<prefix><id>.json`, the
/// manifest, put only after the upload completed and its size was checked. S3 has no rename,
/// but a multipart upload is invisible until CompleteMultipartUpload, which is atomic: the
/// object appears whole or not at all. Leftovers of an interrupted run are incomplete
/// uploads (aborted by the next run) and a completed `.pcbk` whose manifest was never put
/// (deleted by the next run). `lockDirectory` is local, so two processes on one host never
/// clean up each other's uploads; two hosts must not share a prefix.
public struct S3BackupStore: BackupStorage {
    public let location: S3Location
    public let lockDirectory: String
    /// Bytes per uploaded part (S3: at least 5 MiB except the last, at most 10 000 parts).
    public let partSize: Int
    /// Keys per listing page (S3 returns at most 1000; smaller only to test pagination).
    public let pageSize: Int

    public init(location: S3Location, lockDirectory: String, partSize: Int = 8 << 20, pageSize: Int = 1000) {
        self.location = location
        self.lockDirectory = lockDirectory
        self.partSize = partSize
        self.pageSize = pageSize
    }

    public var describe: String { "s3 \(location.endpoint)/\(location.bucket)/\(location.prefix)" }

    func client() throws(BackupError) -> S3Client { try S3Client(location) }

    /// Every object under the prefix, following continuation tokens past 1000 keys.
    func listObjects(_ client: S3Client, under: String = "") throws(BackupError) -> [S3Protocol.Object] {
        var all: [S3Protocol.Object] = []
        var token: String?
        repeat {
            var query = [("list-type", "2"), ("prefix", location.prefix + under), ("max-keys", String(pageSize))]
            if let token { query.append(("continuation-token", token)) }
            let response = try client.expect(try client.request("GET", key: nil, query: query), [200], "ListObjectsV2")
            let page = try S3Protocol.parseObjectPage(response.text)
            all += page.objects
            token = page.nextToken
        } while token != nil
        return all
    }

    /// Every incomplete multipart upload under the prefix, following the markers past 1000.
    func listUploads(_ client: S3Client) throws(BackupError) -> [S3Protocol.Upload] {
        var all: [S3Protocol.Upload] = []
        var marker: (String, String)?
        repeat {
            var query = [("uploads", ""), ("prefix", location.prefix), ("max-uploads", String(pageSize))]
            if let marker { query += [("key-marker", marker.0), ("upload-id-marker", marker.1)] }
            let response = try client.expect(try client.request("GET", key: nil, query: query), [200], "ListMultipartUploads")
            let page = try S3Protocol.parseUploadPage(response.text)
            all += page.uploads
            marker = page.next
        } while marker != nil
        return all
    }

    /// The id of `<prefix><id>.<suffix>`, or nil for keys that are not the store's.
    func id(of key: String, suffix: String) -> String? {
        guard key.hasPrefix(location.prefix), key.hasSuffix(suffix) else { return nil }
        let id = String(key.dropFirst(location.prefix.count).dropLast(suffix.count))
        return BackupManifest.isValidID(id) ? id : nil
    }

    public func manifests() throws(BackupError) -> (manifests: [BackupManifest], problems: [String]) {
        let client = try client()
        var result: [BackupManifest] = []
        var problems: [String] = []
        for object in try listObjects(client) {
            guard let id = id(of: object.key, suffix: ".json") else { continue }
            do {
                let manifest = try fetchManifest(client, id)
                guard manifest.id == id else {
                    problems.append("\(id).json: names backup \(manifest.id)")
                    continue
                }
                result.append(manifest)
            } catch {
                problems.append("\(id).json: \(error.description)")
            }
        }
        return (result.sorted { ($0.startedAt, $0.id) < ($1.startedAt, $1.id) }, problems)
    }

    private func fetchManifest(_ client: S3Client, _ id: String) throws(BackupError) -> BackupManifest {
        let response = try client.request("GET", key: client.key("\(id).json"))
        if response.status == 404 { throw BackupError("no backup \(id) in \(describe)") }
        _ = try client.expect(response, [200], "GET \(id).json")
        guard response.body.count <= BackupManifest.sizeLimit else { throw BackupError("\(id).json is larger than 32 MiB") }
        return try BackupManifest.decode(response.text)
    }

    public func storedIDs() throws(BackupError) -> Set<String> {
        let client = try client()
        return Set(try listObjects(client).compactMap { id(of: $0.key, suffix: ".pcbk") ?? memberID(of: $0.key) })
    }

    public func goodManifest(_ id: String) throws(BackupError) -> BackupManifest {
        guard BackupManifest.isValidID(id) else { throw BackupError("\"\(id)\" is not a backup id (32 hex digits)") }
        let client = try client()
        let manifest = try fetchManifest(client, id)
        guard manifest.id == id else { throw BackupError("manifest \(id).json names backup \(manifest.id)") }
        guard manifest.status == .good else {
            throw BackupError("backup \(id) is not good (status \(manifest.status.rawValue): \(manifest.error))")
        }
        // A directory-format backup is checked by its TOC, the one file every such dump has.
        let object = manifest.format == "directory" ? "\(id).pcbd/toc.dat.pcbk" : "\(id).pcbk"
        let head = try client.request("HEAD", key: client.key(object))
        if head.status == 404 { throw BackupError("backup \(id): its object \(object) is missing") }
        _ = try client.expect(head, [200], "HEAD \(object)")
        return manifest
    }

    /// Aborts every incomplete multipart upload of a `.pcbk` under the prefix, and deletes a
    /// `.pcbk` that has no manifest (its run died between completing the upload and putting
    /// the manifest).
    public func removeLeftovers() throws(BackupError) -> [String] {
        let client = try client()
        var removed: [String] = []
        for upload in try listUploads(client) where id(of: upload.key, suffix: ".pcbk") != nil || memberID(of: upload.key) != nil {
            let response = try client.request("DELETE", key: upload.key, query: [("uploadId", upload.uploadID)])
            _ = try client.expect(response, [200, 204, 404], "AbortMultipartUpload \(upload.key)")
            removed.append("upload \(upload.key)")
        }
        let objects = try listObjects(client)
        let manifests = Set(objects.compactMap { id(of: $0.key, suffix: ".json") })
        for object in objects {
            guard let id = id(of: object.key, suffix: ".pcbk") ?? memberID(of: object.key), !manifests.contains(id) else { continue }
            _ = try client.expect(try client.request("DELETE", key: object.key), [200, 204, 404], "DELETE \(object.key)")
            removed.append(object.key)
        }
        return removed
    }

    public func delete(_ id: String) throws(BackupError) {
        let client = try client()
        for name in ["\(id).json", "\(id).pcbk"] {
            _ = try client.expect(try client.request("DELETE", key: client.key(name)), [200, 204, 404], "DELETE \(name)")
        }
        try deleteMembers(client, id)
    }

    public func discard(_ id: String) {
        guard let client = try? client() else { return }
        _ = try? client.request("DELETE", key: client.key("\(id).pcbk"))
        try? deleteMembers(client, id)
    }

    public func writer(for id: String) throws(BackupError) -> any BackupWriter {
        try MultipartWriter(client: try client(), key: "\(id).pcbk", partSize: partSize)
    }

    public func writeManifest(_ manifest: BackupManifest) throws(BackupError) {
        let client = try client()
        let response = try client.request("PUT", key: client.key("\(manifest.id).json"), body: Array(manifest.encoded().utf8))
        _ = try client.expect(response, [200], "PUT \(manifest.id).json")
    }

    public func reader(for id: String) throws(BackupError) -> any BackupSource {
        // Ranged GETs of at most 8 MiB (a response is held whole in memory).
        try RangeSource(client: try client(), key: "\(id).pcbk", pieceSize: min(partSize, 8 << 20))
    }
}

/// A multipart upload fed in pieces: bytes gather into one part buffer, each full part is
/// uploaded (UploadPart) as soon as it fills, and `commit` uploads the rest, completes the
/// upload and checks the object's size with HEAD. The upload is created lazily with the first
/// part, and aborted (AbortMultipartUpload) on any failure.
final class MultipartWriter: BackupWriter {
    private let client: S3Client
    private let key: String
    private let partSize: Int
    private var uploadID: String?
    private var buffer: [UInt8] = []
    private var etags: [String] = []
    private var completed = false

    init(client: S3Client, key: String, partSize: Int) throws(BackupError) {
        self.client = client
        self.key = client.key(key)
        self.partSize = partSize
        buffer.reserveCapacity(partSize)
    }

    func write(_ bytes: [UInt8]) throws(BackupError) {
        var offset = 0
        while offset < bytes.count {
            let take = min(partSize - buffer.count, bytes.count - offset)
            buffer += bytes[offset..<(offset + take)]
            offset += take
            if buffer.count == partSize { try uploadPart() }
        }
    }

    private func uploadPart() throws(BackupError) {
        if uploadID == nil {
            let created = try client.expect(try client.request("POST", key: key, query: [("uploads", "")]), [200],
                                            "CreateMultipartUpload \(key)")
            uploadID = try S3Protocol.parseUploadID(created.text)
        }
        guard let uploadID else { return }
        let number = etags.count + 1
        guard number <= 10_000 else { throw BackupError("\(key): more than 10 000 parts; raise s3_part_size") }
        let response = try client.expect(
            try client.request("PUT", key: key, query: [("partNumber", String(number)), ("uploadId", uploadID)], body: buffer),
            [200], "UploadPart \(number) of \(key)")
        guard let etag = response.etag else { throw BackupError("\(key): part \(number) was stored without an ETag") }
        etags.append(etag)
        buffer.removeAll(keepingCapacity: true)
    }

    func commit(storedBytes: Int64) throws(BackupError) {
        if !buffer.isEmpty || etags.isEmpty { try uploadPart() }
        guard let uploadID else { throw BackupError("\(key): nothing was uploaded") }
        let body = Array(S3Protocol.completeBody(etags: etags).utf8)
        let response = try client.request("POST", key: key, query: [("uploadId", uploadID)], body: body)
        // A retried CompleteMultipartUpload whose first attempt did complete (its answer was
        // lost) finds the upload gone (404 NoSuchUpload): the HEAD below decides.
        if !(response.attempts > 1 && response.status == 404) {
            _ = try client.expect(response, [200], "CompleteMultipartUpload \(key)")
        }
        completed = true
        let head = try client.expect(try client.request("HEAD", key: key), [200], "HEAD \(key)")
        guard head.contentLength == storedBytes else {
            throw BackupError("\(key): the stored object has \(head.contentLength ?? -1) bytes, \(storedBytes) were uploaded")
        }
    }

    func abort() {
        buffer = []
        if completed {
            _ = try? client.request("DELETE", key: key)
        } else if let uploadID {
            _ = try? client.request("DELETE", key: key, query: [("uploadId", uploadID)])
        }
    }
}

/// The stored object read back with ranged GETs of `pieceSize` bytes, up to the size HEAD
/// reports (a shorter or longer object than the manifest says fails the format's checks).
final class RangeSource: BackupSource {
    private let client: S3Client
    private let key: String
    private let pieceSize: Int64
    private let size: Int64
    private var offset: Int64 = 0

    init(client: S3Client, key: String, pieceSize: Int) throws(BackupError) {
        self.client = client
        self.key = client.key(key)
        self.pieceSize = Int64(pieceSize)
        let head = try client.request("HEAD", key: self.key)
        if head.status == 404 { throw BackupError("\(self.key) is missing") }
        _ = try client.expect(head, [200], "HEAD \(self.key)")
        guard let size = head.contentLength else { throw BackupError("\(self.key): HEAD gave no Content-Length") }
        self.size = size
    }

    func read() throws(BackupError) -> [UInt8] {
        guard offset < size else { return [] }
        let last = min(size, offset + pieceSize) - 1
        let response = try client.expect(try client.request("GET", key: key, range: offset...last), [206, 200],
                                         "GET \(key) bytes \(offset)-\(last)")
        guard response.body.count == Int(last - offset + 1) else {
            throw BackupError("\(key): asked for bytes \(offset)-\(last), got \(response.body.count)")
        }
        offset = last + 1
        return response.body
    }
}
