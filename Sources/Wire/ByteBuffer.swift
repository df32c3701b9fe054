import Glibc

/// A growable byte buffer with explicit read and write cursors.
/// Invariant: 0 <= readerIndex <= writerIndex <= storage.count.
public struct ByteBuffer: Sendable, Equatable {
    @usableFromInline var storage: [UInt8]
    public private(set) var readerIndex: Int = 0
    public private(set) var writerIndex: Int = 0

    public init() { storage = [] }

    public init(bytes: some Sequence<UInt8>) {
        storage = Array(bytes)
        writerIndex = storage.count
    }

    public static func == (a: ByteBuffer, b: ByteBuffer) -> Bool { a.readableBytesView == b.readableBytesView }

    @inline(__always) private func checkInvariant() {
        assert(0 <= readerIndex && readerIndex <= writerIndex && writerIndex <= storage.count, "ByteBuffer cursors out of order")
    }

    public var readableBytes: Int { writerIndex - readerIndex }
    /// Bytes allocated, read or not.
    public var capacity: Int { storage.count }
    public var readableBytesView: ArraySlice<UInt8> { storage[readerIndex..<writerIndex] }

    // MARK: Writing

    private mutating func reserveWritable(_ count: Int) {
        if writerIndex + count <= storage.count { return }
        // Reclaim consumed space before growing.
        if readerIndex > 0 { discardReadBytes() }
        if writerIndex + count <= storage.count { return }
        let newCount = Swift.max(writerIndex + count, storage.count * 2, 256)
        // One allocation and two raw copies: appending element by element costs ~250 ns a
        // byte in a debug build, seconds for a large message on a loop thread.
        let old = storage
        storage = [UInt8](unsafeUninitializedCapacity: newCount) { buffer, initialized in
            let target = UnsafeMutableRawBufferPointer(buffer)
            old.withUnsafeBytes { target.copyMemory(from: $0) }
            _ = memset(target.baseAddress! + old.count, 0, newCount - old.count)
            initialized = newCount
        }
    }

    /// Raw bytes (a socket read's scratch buffer): one memcpy, no generic dispatch.
    public mutating func writeBytes(_ bytes: UnsafeRawBufferPointer) {
        let n = bytes.count
        guard n > 0 else { return }
        reserveWritable(n)
        let start = writerIndex
        storage.withUnsafeMutableBytes { target in
            UnsafeMutableRawBufferPointer(rebasing: target[start..<(start + n)]).copyMemory(from: bytes)
        }
        writerIndex += n
        checkInvariant()
    }

    /// Another buffer's bytes (the forwarding path): one memcpy, no generic dispatch.
    public mutating func writeBytes(_ bytes: ArraySlice<UInt8>) {
        bytes.withUnsafeBytes { writeBytes($0) }
    }

    public mutating func writeBytes(_ bytes: some Collection<UInt8>) {
        let n = bytes.count
        guard n > 0 else { return }
        reserveWritable(n)
        let start = writerIndex
        // Contiguous sources (arrays, slices: the forwarding path) are copied with one memcpy.
        let copied: Bool? = bytes.withContiguousStorageIfAvailable { source in
            storage.withUnsafeMutableBytes { target in
                UnsafeMutableRawBufferPointer(rebasing: target[start..<(start + n)]).copyMemory(from: UnsafeRawBufferPointer(source))
            }
            return true
        }
        if copied == nil {
            storage.replaceSubrange(start..<(start + n), with: bytes)
        }
        writerIndex += n
        checkInvariant()
    }

    /// Gives the memory back when nothing is buffered (idle connections should cost little).
    public mutating func releaseIfEmpty() {
        if readableBytes == 0 && !storage.isEmpty {
            storage = []
            readerIndex = 0
            writerIndex = 0
        }
    }

    public mutating func writeInteger<T: FixedWidthInteger>(_ value: T) {
        let size = MemoryLayout<T>.size
        reserveWritable(size)
        var big = value.bigEndian
        withUnsafeBytes(of: &big) { raw in
            for i in 0..<size { storage[writerIndex + i] = raw[i] }
        }
        writerIndex += size
    }

    /// A NUL-terminated string (protocol type String).
    public mutating func writeCString(_ s: String) {
        writeBytes(Array(s.utf8))
        writeInteger(UInt8(0))
    }

    /// Lets a `read(2)` write straight into the tail. `body` returns how many bytes it wrote
    /// (negative: none, and the value is returned as is).
    @discardableResult
    public mutating func writeWithUnsafeMutableBytes<E: Error>(
        minimumWritableBytes: Int,
        _ body: (UnsafeMutableRawBufferPointer) throws(E) -> Int
    ) throws(E) -> Int {
        reserveWritable(minimumWritableBytes)
        let start = writerIndex
        let end = storage.count
        let result: Result<Int, E> = storage.withUnsafeMutableBytes { raw in
            do throws(E) {
                return .success(try body(UnsafeMutableRawBufferPointer(rebasing: raw[start..<end])))
            } catch {
                return .failure(error)
            }
        }
        let written = try result.get()
        if written > 0 {
            precondition(written <= end - start)
            writerIndex += written
        }
        checkInvariant()
        return written
    }

    // MARK: Reading

    /// Inlinable: called for every message header on the forwarding path, where an
    /// unspecialized generic call (witness tables, a generic shift per byte) costs more than
    /// the read itself.
    @inlinable
    public func getInteger<T: FixedWidthInteger>(at index: Int, as: T.Type = T.self) -> T? {
        let size = MemoryLayout<T>.size
        guard index >= readerIndex, index + size <= writerIndex else { return nil }
        var value: T = 0
        for i in 0..<size { value = value << 8 | T(storage[index + i]) }
        return value
    }

    public mutating func readInteger<T: FixedWidthInteger>(as: T.Type = T.self) -> T? {
        guard let value = getInteger(at: readerIndex, as: T.self) else { return nil }
        readerIndex += MemoryLayout<T>.size
        return value
    }

    public mutating func readBytes(length: Int) -> [UInt8]? {
        guard length >= 0, readableBytes >= length else { return nil }
        let bytes = Array(storage[readerIndex..<(readerIndex + length)])
        readerIndex += length
        return bytes
    }

    /// Reads up to (and consumes) a NUL terminator; nil when there is none.
    public mutating func readCString() -> String? {
        guard let nul = nextNUL() else { return nil }
        let s = String(decoding: storage[readerIndex..<nul], as: UTF8.self)
        readerIndex = nul + 1
        return s
    }

    /// ``readCString()`` without decoding: the bytes before the NUL exactly as they are.
    public mutating func readCStringBytes() -> [UInt8]? {
        guard let nul = nextNUL() else { return nil }
        let bytes = Array(storage[readerIndex..<nul])
        readerIndex = nul + 1
        return bytes
    }

    /// Where the next NUL is, from the reader index.
    private func nextNUL() -> Int? {
        // memchr: a generic firstIndex(of:) costs ~50 ns a byte in a debug build.
        let start = readerIndex, count = writerIndex - readerIndex
        return storage.withUnsafeBytes { raw in
            guard count > 0, let base = raw.baseAddress, let hit = memchr(base + start, 0, count) else { return nil }
            return UnsafeRawPointer(hit) - base
        }
    }

    public mutating func moveReaderIndex(forwardBy count: Int) {
        precondition(count >= 0 && readerIndex + count <= writerIndex, "moved reader past writer")
        readerIndex += count
    }

    /// ``discardReadBytes()`` only once the consumed part is at least as large as the unread
    /// rest, so each byte is moved O(1) times in all. For a writer that consumes a large
    /// buffer in partial writes: compacting after each one moved the whole unsent rest every
    /// time, quadratic in the message (a 62 MB message moved dozens of times). Space left
    /// unreclaimed is reclaimed by the next append that needs it (`reserveWritable`).
    public mutating func discardReadBytesIfWorthwhile() {
        guard readerIndex > 0, readerIndex >= readableBytes else { return }
        discardReadBytes()
    }

    /// Moves unread bytes to the front so consumed space is reused and memory stays bounded.
    public mutating func discardReadBytes() {
        guard readerIndex > 0 else { return }
        let count = readableBytes
        if count == 0 {
            readerIndex = 0
            writerIndex = 0
        } else {
            storage.withUnsafeMutableBufferPointer { p in
                let base = p.baseAddress!
                base.update(from: base + readerIndex, count: count)
            }
            readerIndex = 0
            writerIndex = count
        }
        // An empty buffer that once held a large message gives its memory back.
        if writerIndex == 0 && storage.count > 64 * 1024 { storage = [] }
        checkInvariant()
    }

    public mutating func clear() {
        readerIndex = 0
        writerIndex = 0
        if storage.count > 64 * 1024 { storage = [] }
    }

    /// The next `length` readable bytes as their own buffer, consuming them. The slice shares
    /// this buffer's storage (copy-on-write: either side's next write copies), so decoding a
    /// message costs no copy of its payload; hold a slice only while decoding, or the next
    /// write to this buffer pays for the copy.
    public mutating func readSlice(length: Int) -> ByteBuffer? {
        guard length >= 0, readableBytes >= length else { return nil }
        var slice = ByteBuffer()
        slice.storage = storage
        slice.readerIndex = readerIndex
        slice.writerIndex = readerIndex + length
        readerIndex += length
        return slice
    }
}
