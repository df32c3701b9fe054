import XCTest
@testable import BackupFormat

/// The backup file format: round trips of every size class, and every way of tampering with a
/// file fails with a clear error (docs/BACKUP.md, "File format").
final class BackupFormatTests: XCTestCase {
    let key = BackupKey(material: Array(repeating: 7, count: 32))
    let otherKey = BackupKey(material: Array(repeating: 9, count: 32))

    private func encrypt(_ data: [UInt8], key: BackupKey? = nil, id: UInt8 = 1, chunk: Int = 1000, feed: Int = 337) throws -> [UInt8] {
        var encryptor = try BackupEncryptor(key: key ?? self.key, backupID: Array(repeating: id, count: 16),
                                            salt: Array(repeating: id &+ 1, count: 32), compressed: false, chunkSize: chunk)
        var out = encryptor.header
        var index = 0
        while index < data.count {
            out += encryptor.update(data[index..<min(index + feed, data.count)])
            index += feed
        }
        out += encryptor.finish()
        return out
    }

    private func decrypt(_ file: [UInt8], keys: [BackupKey]? = nil, feed: Int = 1) throws -> [UInt8] {
        var decryptor = BackupDecryptor(keys: keys ?? [key])
        var out: [UInt8] = []
        var index = 0
        while index < file.count {
            out += try decryptor.update(file[index..<min(index + feed, file.count)])
            index += feed
        }
        try decryptor.finish()
        return out
    }

    private func assertFails(_ file: [UInt8], _ text: String, file f: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try decrypt(file, feed: 4096), file: f, line: line) { error in
            XCTAssertTrue("\(error)".contains(text), "\(error)", file: f, line: line)
        }
    }

    func testRoundTripsAtEverySizeAndFeed() throws {
        for size in [0, 1, 999, 1000, 1001, 2000, 5003] {
            let data = (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 31) }
            let file = try encrypt(data)
            for feed in [1, 7, 4096] {
                XCTAssertEqual(try decrypt(file, feed: feed), data, "size \(size) feed \(feed)")
            }
        }
    }

    func testTamperingFails() throws {
        let data = (0..<3500).map { UInt8(truncatingIfNeeded: $0) }
        let file = try encrypt(data)
        let chunk = 4 + 1000 + 16
        let body = BackupFormat.headerSize
        // A bit flipped anywhere.
        for position in stride(from: 0, to: file.count, by: 97) {
            var edited = file
            edited[position] ^= 0x10
            XCTAssertThrowsError(try decrypt(edited, feed: 4096), "bit at \(position)")
        }
        // Cut short inside a chunk, exactly after a chunk, and the final chunk dropped.
        assertFails(Array(file.prefix(body + chunk + 10)), "truncated")
        assertFails(Array(file.prefix(body + 2 * chunk)), "truncated")
        assertFails(Array(file.prefix(body + 3 * chunk)), "truncated")
        assertFails(Array(file.prefix(40)), "header")
        // Chunks reordered.
        let first: ArraySlice<UInt8> = file[body..<(body + chunk)]
        let second: ArraySlice<UInt8> = file[(body + chunk)..<(body + 2 * chunk)]
        var reordered = Array(file.prefix(body))
        reordered.append(contentsOf: second)
        reordered.append(contentsOf: first)
        reordered.append(contentsOf: file[(body + 2 * chunk)...])
        assertFails(reordered, "failed authentication")
        // Spliced from another backup made with the same key.
        let other = try encrypt(data, id: 2)
        var spliced = Array(file.prefix(body + chunk))
        spliced += other[(body + chunk)...]
        assertFails(spliced, "failed authentication")
        // Data appended after the final chunk.
        assertFails(file + file.suffix(chunk), "after the final chunk")
        // Another key.
        assertFails(try encrypt(data, key: otherKey), "another key")
        XCTAssertEqual(try decrypt(try encrypt(data, key: otherKey), keys: [key, otherKey]), data, "rotated keys stay readable")
    }

    /// A directory-format backup's file: its name is bound into every chunk, its header says
    /// it is a member, and a whole single-file backup is not accepted in its place (nor the
    /// reverse).
    func testMemberFilesAreBoundToTheirName() throws {
        let data = (0..<2500).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        func member(_ name: String) throws -> [UInt8] {
            var encryptor = try BackupEncryptor(key: key, backupID: Array(repeating: 3, count: 16), salt: Array(repeating: 4, count: 32),
                                                compressed: false, chunkSize: 1000, member: name)
            return encryptor.header + encryptor.update(data) + encryptor.finish()
        }
        func open(_ file: [UInt8], as name: String?) throws -> [UInt8] {
            var decryptor = BackupDecryptor(keys: [key], member: name)
            let out = try decryptor.update(file)
            try decryptor.finish()
            return out
        }
        let toc = try member("toc.dat")
        XCTAssertEqual(try open(toc, as: "toc.dat"), data)
        XCTAssertThrowsError(try open(toc, as: "3367.dat")) { XCTAssertTrue("\($0)".contains("3367.dat: chunk 0 failed authentication"), "\($0)") }
        XCTAssertThrowsError(try open(toc, as: nil)) { XCTAssertTrue("\($0)".contains("one file of a directory-format backup"), "\($0)") }
        XCTAssertThrowsError(try open(try encrypt(data), as: "toc.dat")) { XCTAssertTrue("\($0)".contains("single-file backup"), "\($0)") }
        // Same backup id and salt, another name: different associated data, so the ciphertext
        // of one cannot pass as the other even with equal keys.
        XCTAssertNotEqual(Array(toc.dropFirst(BackupFormat.headerSize)), Array(try member("1.dat").dropFirst(BackupFormat.headerSize)))
        XCTAssertThrowsError(try BackupEncryptor(key: key, backupID: Array(repeating: 3, count: 16), salt: Array(repeating: 4, count: 32),
                                                 compressed: false, member: ""))
    }

    func testZstdRoundTripAndTruncation() throws {
        let text = Array(String(repeating: "portcullis backup line\n", count: 20000).utf8)
        let compressor = try ZstdCompressor(level: 3)
        var packed: [UInt8] = []
        for start in stride(from: 0, to: text.count, by: 10_000) {
            packed += try compressor.update(Array(text[start..<min(start + 10_000, text.count)]))
        }
        packed += try compressor.finish()
        XCTAssertLessThan(packed.count, text.count / 20)
        let decompressor = try ZstdDecompressor()
        var unpacked: [UInt8] = []
        for start in stride(from: 0, to: packed.count, by: 333) {
            unpacked += try decompressor.update(Array(packed[start..<min(start + 333, packed.count)]))
        }
        try decompressor.finish()
        XCTAssertEqual(unpacked, text)
        let cut = try ZstdDecompressor()
        _ = try cut.update(Array(packed.dropLast(5)))
        XCTAssertThrowsError(try cut.finish())
    }
}
