import Config
import XCTest
@testable import Backup

final class S3ProtocolTests: XCTestCase {
    func testURIEncodingIsSigV4s() {
        XCTAssertEqual(S3Protocol.uriEncode("pg/ab c+d~e_f.-g", keepSlash: true), "pg/ab%20c%2Bd~e_f.-g")
        XCTAssertEqual(S3Protocol.uriEncode("a/b=é", keepSlash: false), "a%2Fb%3D%C3%A9")
        XCTAssertEqual(S3Protocol.query([("uploads", ""), ("prefix", "pg/"), ("max-uploads", "1000")]),
                       "max-uploads=1000&prefix=pg%2F&uploads=", "sorted, encoded, flags as name=")
    }

    func testObjectListingPages() throws {
        let first = """
            <?xml version="1.0" encoding="UTF-8"?>
            <ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>b</Name><IsTruncated>true</IsTruncated>
            <Contents><Key>pg/a&amp;b.json</Key><Size>12</Size></Contents><Contents><Key>pg/c.pcbk</Key><Size>3000000</Size></Contents>
            <NextContinuationToken>1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=</NextContinuationToken></ListBucketResult>
            """
        let page = try S3Protocol.parseObjectPage(first)
        XCTAssertEqual(page.objects, [.init(key: "pg/a&b.json", size: 12), .init(key: "pg/c.pcbk", size: 3_000_000)])
        XCTAssertEqual(page.nextToken, "1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=")
        let last = try S3Protocol.parseObjectPage("<ListBucketResult><IsTruncated>false</IsTruncated></ListBucketResult>")
        XCTAssertEqual(last, .init(objects: [], nextToken: nil))
        XCTAssertThrowsError(try S3Protocol.parseObjectPage("<ListBucketResult><IsTruncated>true</IsTruncated></ListBucketResult>"),
                             "a truncated page without a token would loop or stop early")
        XCTAssertThrowsError(try S3Protocol.parseObjectPage("<Error><Code>AccessDenied</Code></Error>"))
    }

    func testUploadListingPages() throws {
        let xml = """
            <ListMultipartUploadsResult><Bucket>b</Bucket><IsTruncated>true</IsTruncated>
            <NextKeyMarker>pg/x.pcbk</NextKeyMarker><NextUploadIdMarker>u2</NextUploadIdMarker>
            <Upload><Key>pg/x.pcbk</Key><UploadId>u1</UploadId><Owner><ID>o</ID></Owner></Upload>
            <Upload><Key>pg/x.pcbk</Key><UploadId>u2</UploadId></Upload></ListMultipartUploadsResult>
            """
        let page = try S3Protocol.parseUploadPage(xml)
        XCTAssertEqual(page.uploads, [.init(key: "pg/x.pcbk", uploadID: "u1"), .init(key: "pg/x.pcbk", uploadID: "u2")])
        XCTAssertEqual(page.next?.keyMarker, "pg/x.pcbk")
        XCTAssertEqual(page.next?.uploadIDMarker, "u2")
        XCTAssertNil(try S3Protocol.parseUploadPage("<ListMultipartUploadsResult><IsTruncated>false</IsTruncated></ListMultipartUploadsResult>").next)
    }

    func testCompleteBodyErrorsAndEntities() throws {
        XCTAssertEqual(S3Protocol.completeBody(etags: ["\"e1\"", "\"e2\""]),
                       "<CompleteMultipartUpload xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
                       + "<Part><PartNumber>1</PartNumber><ETag>&quot;e1&quot;</ETag></Part>"
                       + "<Part><PartNumber>2</PartNumber><ETag>&quot;e2&quot;</ETag></Part></CompleteMultipartUpload>")
        XCTAssertEqual(try S3Protocol.parseUploadID("<InitiateMultipartUploadResult><UploadId>abc</UploadId></InitiateMultipartUploadResult>"), "abc")
        XCTAssertEqual(S3Protocol.errorText("<Error><Code>NoSuchKey</Code><Message>The key &lt;x&gt; does not exist</Message></Error>"),
                       "NoSuchKey: The key <x> does not exist")
        XCTAssertEqual(S3Protocol.decodeEntities("a&#65;&#x42;&bogus;&"), "aAB&bogus;&")
    }

    func testS3StoreKeysAreOnlyTheStores() {
        let store = S3BackupStore(location: S3Location(endpoint: "http://h:9000/", bucket: "b", region: "r", prefix: "pg/",
                                                       accessKey: "a", secretKey: "s"), lockDirectory: "/tmp")
        XCTAssertEqual(store.location.endpoint, "http://h:9000")
        let id = String(repeating: "0a", count: 16)
        XCTAssertEqual(store.id(of: "pg/\(id).pcbk", suffix: ".pcbk"), id)
        XCTAssertNil(store.id(of: "other/\(id).pcbk", suffix: ".pcbk"))
        XCTAssertNil(store.id(of: "pg/.junk-00001", suffix: ".pcbk"))
        XCTAssertNil(store.id(of: "pg/\(id.uppercased()).pcbk", suffix: ".pcbk"))
        XCTAssertFalse(store.describe.contains("s"+"ecret") || store.describe.contains(":s@"), store.describe)
    }

    func testS3SettingsParse() throws {
        let base = BackupTestConfig.ini(backupDirectory: "/var/lib/portcullis")
        let config = try ConfigLoader.parse(base + """

            storage = s3
            s3_bucket = backups
            s3_prefix = pg/
            s3_region = eu-central-1
            s3_access_key = AKID
            s3_secret_key = sk
            s3_part_size = 16
            s3_max_attempts = 3
            s3_url_style = virtual
            """, fileName: "t.ini")
        let s3 = try XCTUnwrap(config.backup?.s3)
        XCTAssertEqual(s3.maxAttempts, 3)
        XCTAssertEqual(s3.urlStyle, .virtual)
        XCTAssertEqual(try ConfigLoader.parse(base, fileName: "t.ini").backup?.s3.urlStyle, .path)
        XCTAssertEqual(try ConfigLoader.parse(base, fileName: "t.ini").backup?.s3.maxAttempts, 5)
        XCTAssertEqual(config.backup?.storage, .s3)
        XCTAssertEqual(s3.resolvedEndpoint, "https://s3.eu-central-1.amazonaws.com")
        XCTAssertEqual(s3.partSizeMiB, 16)
        XCTAssertTrue(ConfigLoader.plaintextSecrets(in: config).contains("[backup] s3_secret_key"))
        for (lines, expected) in [
            ("storage = s3\ns3_access_key = a\ns3_secret_key = b", "needs s3_bucket"),
            ("storage = s3\ns3_bucket = b", "needs s3_access_key and s3_secret_key"),
            ("storage = s3\ns3_bucket = b\ns3_access_key = a\ns3_secret_key = b\ns3_part_size = 4", "s3_part_size"),
            ("s3_endpoint = ftp://x", "http:// or https://"),
            ("storage = tape", "storage"),
            ("s3_max_attempts = 0", "s3_max_attempts"),
            ("s3_url_style = dns", "s3_url_style"),
            ("storage = s3\ns3_bucket = My_Bucket\ns3_access_key = a\ns3_secret_key = b\ns3_url_style = virtual", "bucket name of lower-case"),
        ] {
            XCTAssertThrowsError(try ConfigLoader.parse(base + "\n" + lines, fileName: "t.ini"), lines) { error in
                XCTAssertTrue("\(error)".contains(expected), "\(lines): \(error)")
            }
        }
    }

    /// Path style keeps the bucket in the path; virtual-hosted style moves it into the host,
    /// keeping the scheme and port; keys are encoded the same way in both.
    func testPathAndVirtualHostedURLs() {
        XCTAssertEqual(S3Protocol.url(endpoint: "https://s3.eu-central-1.amazonaws.com", bucket: "b", key: "pg/a b.json", virtualHosted: false),
                       "https://s3.eu-central-1.amazonaws.com/b/pg/a%20b.json")
        XCTAssertEqual(S3Protocol.url(endpoint: "https://s3.eu-central-1.amazonaws.com", bucket: "b", key: "pg/a b.json", virtualHosted: true),
                       "https://b.s3.eu-central-1.amazonaws.com/pg/a%20b.json")
        XCTAssertEqual(S3Protocol.url(endpoint: "http://127.0.0.1:9000", bucket: "b", key: nil, virtualHosted: false), "http://127.0.0.1:9000/b")
        XCTAssertEqual(S3Protocol.url(endpoint: "http://minio.local:9000", bucket: "b", key: nil, virtualHosted: true), "http://b.minio.local:9000/")
    }

    /// Which failures are retried, and the back-off: exponential, capped, fully jittered,
    /// never shorter than a Retry-After (itself capped).
    func testRetryPolicy() {
        for status in [429, 500, 502, 503, 504] { XCTAssertTrue(S3RetryPolicy.isTransient(status: status, body: [], method: "PUT"), "\(status)") }
        for status in [200, 204, 206, 301, 400, 403, 404, 409, 412] {
            XCTAssertFalse(S3RetryPolicy.isTransient(status: status, body: [], method: "GET"), "\(status)")
        }
        let errorInOK = Array("<?xml version=\"1.0\"?><Error><Code>InternalError</Code></Error>".utf8)
        XCTAssertTrue(S3RetryPolicy.isTransient(status: 200, body: errorInOK, method: "POST"), "CompleteMultipartUpload's error in a 200")
        XCTAssertFalse(S3RetryPolicy.isTransient(status: 200, body: errorInOK, method: "GET"), "an object may hold anything")
        let policy = S3RetryPolicy(maxAttempts: 5, baseMilliseconds: 200, capMilliseconds: 1000)
        XCTAssertEqual((1...6).map { policy.ceilingMilliseconds(afterAttempt: $0) }, [200, 400, 800, 1000, 1000, 1000])
        XCTAssertEqual(policy.delayMilliseconds(afterAttempt: 3, unit: 0), 0)
        XCTAssertEqual(policy.delayMilliseconds(afterAttempt: 3, unit: 0.5), 400)
        XCTAssertEqual(policy.delayMilliseconds(afterAttempt: 3, unit: 0.5, retryAfterSeconds: 2), 1000, "Retry-After, capped")
        XCTAssertEqual(policy.delayMilliseconds(afterAttempt: 1, unit: 0.99, retryAfterSeconds: 0), 198)
        XCTAssertEqual(S3RetryPolicy(maxAttempts: 0).maxAttempts, 1)
        XCTAssertEqual(S3RetryPolicy().ceilingMilliseconds(afterAttempt: 60), 10_000, "no overflow")
    }
}
