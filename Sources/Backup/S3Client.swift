import CCurl
import Glibc

/// Where and as whom the S3-compatible store is reached (from `[backup] s3_*`).
public struct S3Location: Sendable {
    /// `http(s)://host[:port]`, without a trailing slash; requests are path-style
    /// (`<endpoint>/<bucket>/<key>`), which every S3-compatible server accepts.
    public var endpoint: String
    public var bucket: String
    public var region: String
    /// Prepended to every key (e.g. `portcullis/`); may be empty.
    public var prefix: String
    public var accessKey: String
    /// Never logged, never in an error: it only goes to libcurl's signer.
    public var secretKey: String
    public var caFile: String?
    /// Transient failures are retried with back-off (`s3_max_attempts`).
    public var retry = S3RetryPolicy()
    /// Virtual-hosted-style URLs (`<bucket>.<host>/<key>`, `s3_url_style = virtual`).
    public var virtualHosted = false

    public init(endpoint: String, bucket: String, region: String, prefix: String, accessKey: String, secretKey: String,
                caFile: String? = nil) {
        var trimmed = endpoint
        while trimmed.hasSuffix("/") { trimmed.removeLast() }
        self.endpoint = trimmed
        self.bucket = bucket
        self.region = region
        self.prefix = prefix
        self.accessKey = accessKey
        self.secretKey = secretKey
        self.caFile = caFile
    }
}

struct S3Response {
    var status: Int
    var body: [UInt8]
    var etag: String?
    var contentLength: Int64?
    var retryAfterSeconds: Int? = nil
    /// Attempts it took (more than 1 after transient failures).
    var attempts = 1

    var text: String { String(decoding: body, as: UTF8.self) }
}

/// One libcurl easy handle signing every request with SigV4 (`CURLOPT_AWS_SIGV4`, libcurl ≥
/// 7.75) and sending the payload's SHA-256 as `x-amz-content-sha256`, which S3 requires and
/// libcurl then signs. Synchronous: it runs on the thread that takes the backup (a CLI process
/// or the daemon's backup thread), never on an event-loop thread. The handle is reused, so
/// requests share one kept-alive connection.
final class S3Client {
    private let location: S3Location
    private let handle: UnsafeMutableRawPointer
    /// Response bodies larger than this are refused (ranged GETs ask for less).
    static let responseCap = 64 << 20

    private static let globalInit: Bool = curl_global_init(Int(CURL_GLOBAL_DEFAULT)) == CURLE_OK

    init(_ location: S3Location) throws(BackupError) {
        guard Self.globalInit, let handle = curl_easy_init() else { throw BackupError("libcurl could not be initialised") }
        self.location = location
        self.handle = handle
    }

    deinit { curl_easy_cleanup(handle) }

    func key(_ name: String) -> String { location.prefix + name }

    /// Says where, never with what credentials.
    var describe: String { "s3 \(location.endpoint)/\(location.bucket)/\(location.prefix)" }

    /// One request, retried on transient failures (`S3RetryPolicy`: connection refused, reset
    /// or timed out, 5xx, 429) with capped exponential back-off and jitter; every request the
    /// store makes is idempotent or made safe by its caller (parts, manifests and deletes are
    /// idempotent; see `MultipartWriter.commit` for CompleteMultipartUpload). `key` nil = the
    /// bucket itself. A transport failure on the last attempt throws; HTTP statuses are
    /// returned for the caller to judge (use `expect`).
    func request(_ method: String, key: String?, query: [(String, String)] = [], headers: [String] = [],
                 body: [UInt8] = [], range: ClosedRange<Int64>? = nil) throws(BackupError) -> S3Response {
        let policy = location.retry
        var attempt = 1
        while true {
            let outcome: Result<S3Response, BackupError>
            var transientTransport = false
            do throws(BackupError) {
                outcome = .success(try attemptRequest(method, key: key, query: query, headers: headers, body: body, range: range,
                                                      transient: &transientTransport))
            } catch {
                outcome = .failure(error)
            }
            var retryAfter: Int?
            switch outcome {
            case .success(var response):
                guard S3RetryPolicy.isTransient(status: response.status, body: response.body, method: method), attempt < policy.maxAttempts else {
                    response.attempts = attempt
                    return response
                }
                retryAfter = response.retryAfterSeconds
            case .failure(let error):
                guard transientTransport, attempt < policy.maxAttempts else {
                    throw attempt > 1 ? BackupError("\(error.description) (after \(attempt) attempts)") : error
                }
            }
            let wait = policy.delayMilliseconds(afterAttempt: attempt, unit: Double.random(in: 0..<1), retryAfterSeconds: retryAfter)
            var pause = timespec(tv_sec: wait / 1000, tv_nsec: (wait % 1000) * 1_000_000)
            var remaining = timespec()
            while nanosleep(&pause, &remaining) != 0 && errno == EINTR { pause = remaining }
            attempt += 1
        }
    }

    /// libcurl's codes for a connection refused, reset, cut short or timed out: worth another
    /// attempt. (A name that does not resolve, TLS verification and the like are not.)
    static let transientCurlCodes: Set<UInt32> = [
        CURLE_COULDNT_CONNECT.rawValue, CURLE_PARTIAL_FILE.rawValue, CURLE_OPERATION_TIMEDOUT.rawValue,
        CURLE_GOT_NOTHING.rawValue, CURLE_SEND_ERROR.rawValue, CURLE_RECV_ERROR.rawValue,
    ]

    private func attemptRequest(_ method: String, key: String?, query: [(String, String)], headers: [String],
                                body: [UInt8], range: ClosedRange<Int64>?, transient: inout Bool) throws(BackupError) -> S3Response {
        var url = S3Protocol.url(endpoint: location.endpoint, bucket: location.bucket, key: key, virtualHosted: location.virtualHosted)
        if !query.isEmpty { url += "?" + S3Protocol.query(query) }
        curl_easy_reset(handle)
        let sink = ResponseSink()
        let context = Unmanaged.passUnretained(sink).toOpaque()
        defer { withExtendedLifetime(sink) {} }
        var ok = true
        ok = ok && portcullis_curl_set_string(handle, CURLOPT_URL, url) == CURLE_OK
        ok = ok && portcullis_curl_set_string(handle, CURLOPT_AWS_SIGV4, "aws:amz:\(location.region):s3") == CURLE_OK
        ok = ok && portcullis_curl_set_string(handle, CURLOPT_USERNAME, location.accessKey) == CURLE_OK
        ok = ok && portcullis_curl_set_string(handle, CURLOPT_PASSWORD, location.secretKey) == CURLE_OK
        ok = ok && portcullis_curl_set_long(handle, CURLOPT_NOSIGNAL, 1) == CURLE_OK
        ok = ok && portcullis_curl_set_long(handle, CURLOPT_CONNECTTIMEOUT, 15) == CURLE_OK
        // A stalled transfer (under 1 byte/s for 60 s) fails instead of hanging the backup.
        ok = ok && portcullis_curl_set_long(handle, CURLOPT_LOW_SPEED_LIMIT, 1) == CURLE_OK
        ok = ok && portcullis_curl_set_long(handle, CURLOPT_LOW_SPEED_TIME, 60) == CURLE_OK
        ok = ok && portcullis_curl_set_string(handle, CURLOPT_PROTOCOLS_STR, "http,https") == CURLE_OK
        if let caFile = location.caFile {
            ok = ok && portcullis_curl_set_string(handle, CURLOPT_CAINFO, caFile) == CURLE_OK
        }
        ok = ok && portcullis_curl_set_callback(handle, CURLOPT_WRITEFUNCTION, { data, size, count, context in
            guard let data, let context else { return 0 }
            let sink = Unmanaged<ResponseSink>.fromOpaque(context).takeUnretainedValue()
            let total = size * count
            if sink.body.count + total > S3Client.responseCap { return 0 }
            sink.body.append(contentsOf: UnsafeRawBufferPointer(start: data, count: total))
            return total
        }) == CURLE_OK
        ok = ok && portcullis_curl_set_pointer(handle, CURLOPT_WRITEDATA, context) == CURLE_OK
        ok = ok && portcullis_curl_set_callback(handle, CURLOPT_HEADERFUNCTION, { data, size, count, context in
            guard let data, let context else { return 0 }
            let sink = Unmanaged<ResponseSink>.fromOpaque(context).takeUnretainedValue()
            let total = size * count
            sink.header(String(decoding: UnsafeRawBufferPointer(start: data, count: total), as: UTF8.self))
            return total
        }) == CURLE_OK
        ok = ok && portcullis_curl_set_pointer(handle, CURLOPT_HEADERDATA, context) == CURLE_OK
        switch method {
        case "GET": ok = ok && portcullis_curl_set_long(handle, CURLOPT_HTTPGET, 1) == CURLE_OK
        case "HEAD": ok = ok && portcullis_curl_set_long(handle, CURLOPT_NOBODY, 1) == CURLE_OK
        default: ok = ok && portcullis_curl_set_string(handle, CURLOPT_CUSTOMREQUEST, method) == CURLE_OK
        }
        var allHeaders = headers
        allHeaders.append("x-amz-content-sha256: \(sha256Hex(body))")
        if let range { allHeaders.append("Range: bytes=\(range.lowerBound)-\(range.upperBound)") }
        if method == "PUT" || method == "POST" {
            // No "Expect: 100-continue" round trip, and no form content type.
            allHeaders += ["Expect:", "Content-Type: application/octet-stream"]
        }
        var list: UnsafeMutablePointer<curl_slist>?
        for header in allHeaders { list = curl_slist_append(list, header) }
        defer { curl_slist_free_all(list) }
        ok = ok && portcullis_curl_set_pointer(handle, CURLOPT_HTTPHEADER, UnsafeMutableRawPointer(list)) == CURLE_OK
        guard ok else { throw BackupError("libcurl refused an option (is it older than 7.75?)") }

        let code: CURLcode = body.withUnsafeBytes { raw in
            if method == "PUT" || method == "POST" {
                _ = portcullis_curl_set_size(handle, CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(raw.count))
                if raw.count == 0 {
                    // COPYPOSTFIELDS copies, so the empty string need not outlive this call.
                    _ = portcullis_curl_set_string(handle, CURLOPT_COPYPOSTFIELDS, "")
                } else {
                    _ = portcullis_curl_set_pointer(handle, CURLOPT_POSTFIELDS, UnsafeMutableRawPointer(mutating: raw.baseAddress))
                }
            }
            return curl_easy_perform(handle)
        }
        guard code == CURLE_OK else {
            transient = Self.transientCurlCodes.contains(code.rawValue)
            throw BackupError("\(describe): \(method) \(key ?? ""): \(String(cString: curl_easy_strerror(code)))")
        }
        return S3Response(status: portcullis_curl_response_code(handle), body: sink.body, etag: sink.etag,
                          contentLength: sink.contentLength, retryAfterSeconds: sink.retryAfter)
    }

    /// The response when its status is one of `statuses`; otherwise an error naming S3's code.
    func expect(_ response: S3Response, _ statuses: Set<Int>, _ what: String) throws(BackupError) -> S3Response {
        // CompleteMultipartUpload may answer 200 with an <Error> document.
        let isErrorDocument = String(decoding: response.body.prefix(120), as: UTF8.self).contains("<Error>")
        if statuses.contains(response.status) && !isErrorDocument { return response }
        let detail = S3Protocol.errorText(response.text) ?? "HTTP \(response.status)"
        throw BackupError("\(describe): \(what) failed: \(detail)")
    }
}

private final class ResponseSink {
    var body: [UInt8] = []
    var etag: String?
    var contentLength: Int64?
    var retryAfter: Int?

    func header(_ line: String) {
        guard let colon = line.firstIndex(of: ":") else {
            // A new status line (after a redirect or 100): forget earlier headers.
            if line.hasPrefix("HTTP/") { etag = nil; contentLength = nil; retryAfter = nil }
            return
        }
        let name = line[..<colon].lowercased()
        let value = line[line.index(after: colon)...].trimmingSpaces()
        if name == "etag" { etag = value }
        if name == "content-length" { contentLength = Int64(value) }
        if name == "retry-after" { retryAfter = Int(value) }
    }
}

private extension Substring {
    func trimmingSpaces() -> String { String(self).trimmingSpaces() }
}

func sha256Hex(_ bytes: [UInt8]) -> String {
    let sha = StreamingSHA256()
    sha.update(bytes)
    return sha.finish()
}
