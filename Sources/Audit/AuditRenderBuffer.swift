/// A growable byte buffer the writer thread renders events into (JSON lines, journald
/// entries) and keeps for the next batch: after the first batches it holds the largest batch's
/// bytes and renders without allocating. Appends are plain stores into owned memory, without
/// the uniqueness and capacity checks of an `[UInt8]` append per byte (which profiled as a good
/// part of the writer's time per event).
///
/// Not thread-safe: one per sink, used on the writer thread only.
public final class AuditRenderBuffer {
    @exclusivity(unchecked) public private(set) var count = 0
    @exclusivity(unchecked) private var capacity: Int
    @exclusivity(unchecked) private var base: UnsafeMutablePointer<UInt8>

    public init(capacity: Int = 4096) {
        self.capacity = max(64, capacity)
        base = .allocate(capacity: self.capacity)
    }

    deinit { base.deallocate() }

    /// The bytes rendered so far; valid until the next append or `removeAll`.
    public var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: base, count: count) }

    public var isEmpty: Bool { count == 0 }

    /// Empties it, keeping its storage.
    public func removeAll() { count = 0 }

    /// Drops everything from `position` on.
    public func truncate(to position: Int) { count = min(count, max(0, position)) }

    /// Address of byte `offset` (for iovecs pointing into the buffer once rendering is done).
    public func address(at offset: Int) -> UnsafeMutableRawPointer { UnsafeMutableRawPointer(base + offset) }

    @inline(__always)
    func reserve(_ more: Int) {
        if count + more > capacity { grow(to: count + more) }
    }

    private func grow(to needed: Int) {
        var fresh = capacity
        while fresh < needed { fresh *= 2 }
        let storage = UnsafeMutablePointer<UInt8>.allocate(capacity: fresh)
        storage.update(from: base, count: count)
        base.deallocate()
        base = storage
        capacity = fresh
    }

    @inline(__always)
    public func append(_ byte: UInt8) {
        reserve(1)
        base[count] = byte
        count += 1
    }

    @inline(__always)
    func append(_ a: UInt8, _ b: UInt8) {
        reserve(2)
        base[count] = a
        base[count + 1] = b
        count += 2
    }

    public func append(_ raw: UnsafeRawBufferPointer) {
        guard let source = raw.baseAddress, raw.count > 0 else { return }
        reserve(raw.count)
        UnsafeMutableRawPointer(base + count).copyMemory(from: source, byteCount: raw.count)
        count += raw.count
    }

    public func append(_ text: StaticString) {
        append(UnsafeRawBufferPointer(start: text.utf8Start, count: text.utf8CodeUnitCount))
    }

    /// A string's UTF-8 (contiguous for native and literal strings; copied once otherwise).
    public func append(_ text: String) {
        if text.utf8.withContiguousStorageIfAvailable({ append(UnsafeRawBufferPointer($0)) }) == nil {
            var copy = text
            copy.withUTF8 { append(UnsafeRawBufferPointer($0)) }
        }
    }

    /// A decimal integer, without an intermediate string.
    public func appendDecimal(_ value: Int64) {
        var magnitude = value.magnitude
        reserve(20)
        if value < 0 { base[count] = UInt8(ascii: "-"); count += 1 }
        var digits = 1
        var probe = magnitude
        while probe >= 10 { probe /= 10; digits += 1 }
        var index = count + digits - 1
        repeat {
            base[index] = UInt8(ascii: "0") + UInt8(truncatingIfNeeded: magnitude % 10)
            magnitude /= 10
            index -= 1
        } while magnitude > 0
        count += digits
    }

    /// `value` zero-padded to `width` digits (value ≥ 0, at most `width` digits).
    @inline(__always)
    func appendPadded(_ value: Int64, width: Int) {
        reserve(width)
        var rest = value
        var index = count + width - 1
        while index >= count {
            base[index] = UInt8(ascii: "0") + UInt8(truncatingIfNeeded: rest % 10)
            rest /= 10
            index -= 1
        }
        count += width
    }
}
