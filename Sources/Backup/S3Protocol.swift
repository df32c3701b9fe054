/// The pure parts of the S3 REST API the backup store uses: URI encoding, the XML of
/// ListObjectsV2, ListMultipartUploads, CreateMultipartUpload and errors, and the
/// CompleteMultipartUpload body (Amazon S3 API Reference, "Actions"; encoding as in
/// "Create a canonical request for Signature Version 4").
public enum S3Protocol {
    /// Percent-encodes everything but the unreserved characters `A-Z a-z 0-9 - . _ ~` (and `/`
    /// when `keepSlash`, for object keys in the path), upper-case hex, as SigV4 requires.
    public static func uriEncode(_ text: String, keepSlash: Bool) -> String {
        var out = ""
        let digits = Array("0123456789ABCDEF")
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                 UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"):
                out.unicodeScalars.append(Unicode.Scalar(byte))
            case UInt8(ascii: "/") where keepSlash:
                out.append("/")
            default:
                out.append("%")
                out.append(digits[Int(byte >> 4)])
                out.append(digits[Int(byte & 15)])
            }
        }
        return out
    }

    /// The request URL without its query. Path style: `<endpoint>/<bucket>/<key>`; virtual-hosted
    /// style (Amazon S3 User Guide, "Virtual hosting of buckets"): the bucket becomes the first
    /// label of the endpoint's host, `<scheme>://<bucket>.<host>[:port]/<key>`. `key` nil = the
    /// bucket itself (`/` in virtual style).
    public static func url(endpoint: String, bucket: String, key: String?, virtualHosted: Bool) -> String {
        let encodedKey = key.map { uriEncode($0, keepSlash: true) }
        let scheme = ["https://", "http://"].first { endpoint.hasPrefix($0) }
        guard virtualHosted, let scheme else {
            return "\(endpoint)/\(uriEncode(bucket, keepSlash: false))" + (encodedKey.map { "/" + $0 } ?? "")
        }
        return "\(scheme)\(bucket).\(endpoint.dropFirst(scheme.count))/" + (encodedKey ?? "")
    }

    /// A query string in canonical form: names sorted, names and values encoded, `name=` for a
    /// flag such as `uploads` (so the URL is already what SigV4 signs).
    public static func query(_ items: [(String, String)]) -> String {
        items.sorted { ($0.0, $0.1) < ($1.0, $1.1) }
            .map { uriEncode($0.0, keepSlash: false) + "=" + uriEncode($0.1, keepSlash: false) }
            .joined(separator: "&")
    }

    /// The inner text of every `<name>…</name>` element, in document order, entities decoded.
    /// S3's responses never nest an element inside one of the same name.
    public static func elements(_ name: String, in xml: String) -> [String] {
        let open = "<\(name)>", close = "</\(name)>"
        var result: [String] = []
        var rest = Substring(xml)
        while let start = rest.firstRange(of: open) {
            let after = rest[start.upperBound...]
            guard let end = after.firstRange(of: close) else { break }
            result.append(decodeEntities(String(after[..<end.lowerBound])))
            rest = after[end.upperBound...]
        }
        return result
    }

    /// The raw inner XML of every `<name>` block (for per-entry fields).
    static func blocks(_ name: String, in xml: String) -> [String] {
        let open = "<\(name)>", close = "</\(name)>"
        var result: [String] = []
        var rest = Substring(xml)
        while let start = rest.firstRange(of: open) {
            let after = rest[start.upperBound...]
            guard let end = after.firstRange(of: close) else { break }
            result.append(String(after[..<end.lowerBound]))
            rest = after[end.upperBound...]
        }
        return result
    }

    public static func decodeEntities(_ text: String) -> String {
        guard text.contains("&") else { return text }
        var out = ""
        var rest = Substring(text)
        while let amp = rest.firstIndex(of: "&") {
            out += rest[..<amp]
            guard let semi = rest[amp...].firstIndex(of: ";"), rest.distance(from: amp, to: semi) <= 10 else {
                out += rest[amp...]
                return out
            }
            let entity = rest[rest.index(after: amp)..<semi]
            switch entity {
            case "amp": out += "&"
            case "lt": out += "<"
            case "gt": out += ">"
            case "quot": out += "\""
            case "apos": out += "'"
            default:
                let scalar: Unicode.Scalar?
                if entity.hasPrefix("#x") { scalar = UInt32(entity.dropFirst(2), radix: 16).flatMap(Unicode.Scalar.init) }
                else if entity.hasPrefix("#") { scalar = UInt32(entity.dropFirst()).flatMap(Unicode.Scalar.init) }
                else { scalar = nil }
                if let scalar { out.unicodeScalars.append(scalar) } else { out += rest[amp...semi] }
            }
            rest = rest[rest.index(after: semi)...]
        }
        return out + rest
    }

    static func escape(_ text: String) -> String {
        var out = ""
        for character in text {
            switch character {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&apos;"
            default: out.append(character)
            }
        }
        return out
    }

    public struct Object: Equatable, Sendable {
        public var key: String
        public var size: Int64
    }

    /// One page of ListObjectsV2: its objects and the token of the next page (nil = last).
    public struct ObjectPage: Equatable, Sendable {
        public var objects: [Object]
        public var nextToken: String?
    }

    public static func parseObjectPage(_ xml: String) throws(BackupError) -> ObjectPage {
        guard xml.contains("<ListBucketResult") else { throw BackupError("S3: not a ListBucketResult") }
        let objects = blocks("Contents", in: xml).map { block in
            Object(key: elements("Key", in: block).first ?? "", size: Int64(elements("Size", in: block).first ?? "") ?? 0)
        }
        let truncated = elements("IsTruncated", in: xml).first == "true"
        let token = elements("NextContinuationToken", in: xml).first
        if truncated && (token ?? "").isEmpty { throw BackupError("S3: a truncated listing without NextContinuationToken") }
        return ObjectPage(objects: objects, nextToken: truncated ? token : nil)
    }

    public struct Upload: Equatable, Sendable {
        public var key: String
        public var uploadID: String
    }

    /// One page of ListMultipartUploads: the incomplete uploads and the markers of the next
    /// page (nil = last).
    public struct UploadPage: Equatable, Sendable {
        public var uploads: [Upload]
        public var next: (keyMarker: String, uploadIDMarker: String)?

        public static func == (a: UploadPage, b: UploadPage) -> Bool {
            a.uploads == b.uploads && a.next?.keyMarker == b.next?.keyMarker && a.next?.uploadIDMarker == b.next?.uploadIDMarker
        }
    }

    public static func parseUploadPage(_ xml: String) throws(BackupError) -> UploadPage {
        guard xml.contains("<ListMultipartUploadsResult") else { throw BackupError("S3: not a ListMultipartUploadsResult") }
        let uploads = blocks("Upload", in: xml).map { block in
            Upload(key: elements("Key", in: block).first ?? "", uploadID: elements("UploadId", in: block).first ?? "")
        }
        guard elements("IsTruncated", in: xml).first == "true" else { return UploadPage(uploads: uploads, next: nil) }
        let key = elements("NextKeyMarker", in: xml).first ?? ""
        let upload = elements("NextUploadIdMarker", in: xml).first ?? ""
        if key.isEmpty { throw BackupError("S3: a truncated upload listing without NextKeyMarker") }
        return UploadPage(uploads: uploads, next: (key, upload))
    }

    public static func parseUploadID(_ xml: String) throws(BackupError) -> String {
        guard let id = elements("UploadId", in: xml).first, !id.isEmpty else {
            throw BackupError("S3: CreateMultipartUpload returned no UploadId")
        }
        return id
    }

    /// `Code: Message` of an S3 error document, or nil.
    public static func errorText(_ xml: String) -> String? {
        guard let code = elements("Code", in: xml).first else { return nil }
        let message = elements("Message", in: xml).first ?? ""
        return message.isEmpty ? code : "\(code): \(message)"
    }

    /// The CompleteMultipartUpload body: every part's number and ETag, in order.
    public static func completeBody(etags: [String]) -> String {
        var xml = "<CompleteMultipartUpload xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
        for (index, etag) in etags.enumerated() {
            xml += "<Part><PartNumber>\(index + 1)</PartNumber><ETag>\(escape(etag))</ETag></Part>"
        }
        return xml + "</CompleteMultipartUpload>"
    }
}
