/// A first-in first-out queue whose `popFirst` is O(1): a pool's waiters (a thousand clients
/// on twenty server connections) are served from the front at every release, and a session's
/// audit events held back by a full queue are submitted from the front, and a session's owed
/// completions (transaction pooling) are answered from the front, where
/// `Array.removeFirst` would move every other element each time (quadratic, on a loop). The consumed prefix is
/// dropped once it is half the storage, so the memory stays proportional to the waiters.
///
/// Inlinable, so that each use is specialized for its element type: used from other modules
/// unspecialized, one `popFirst` cost about 3,000 instructions of generic dispatch and metadata
/// lookups, on every transaction of every session (callgrind, 2026-12-07).
public struct FIFOQueue<Element> {
    @usableFromInline var storage: [Element] = []
    @usableFromInline var head = 0

    @inlinable public init() {}

    @inlinable public var isEmpty: Bool { head == storage.count }
    @inlinable public var count: Int { storage.count - head }
    @inlinable public var first: Element? { isEmpty ? nil : storage[head] }

    @inlinable public mutating func append(_ element: Element) { storage.append(element) }

    @inlinable public mutating func popFirst() -> Element? {
        guard !isEmpty else { return nil }
        let element = storage[head]
        head += 1
        if head == storage.count {
            storage.removeAll(keepingCapacity: true)
            head = 0
        } else if head >= 32 && head * 2 >= storage.count {
            storage.removeFirst(head)
            head = 0
        }
        return element
    }

    /// Removes the elements that match, keeping the others in order; returns those removed.
    @discardableResult
    @inlinable public mutating func removeAll(where matches: (Element) -> Bool) -> [Element] {
        var kept: [Element] = []
        var removed: [Element] = []
        for element in storage[head...] {
            if matches(element) { removed.append(element) } else { kept.append(element) }
        }
        if !removed.isEmpty {
            storage = kept
            head = 0
        }
        return removed
    }

    @inlinable public mutating func removeAll() {
        storage.removeAll()
        head = 0
    }

    @inlinable public var elements: ArraySlice<Element> { storage[head...] }

    /// Changes the first element in place; false when the queue is empty.
    @discardableResult
    @inlinable public mutating func updateFirst(_ change: (inout Element) -> Void) -> Bool {
        guard !isEmpty else { return false }
        change(&storage[head])
        return true
    }

    /// Changes every element in place, first to last.
    @inlinable public mutating func updateEach(_ change: (inout Element) -> Void) {
        for index in head..<storage.count { change(&storage[index]) }
    }

    /// Removes the first `k` elements (all of them when there are fewer).
    @inlinable public mutating func removeFirst(_ k: Int) {
        for _ in 0..<min(max(k, 0), count) { _ = popFirst() }
    }

    /// Puts the elements in place of the queue's, in order (for the rare edits inside it).
    @inlinable public mutating func replaceAll(with elements: some Sequence<Element>) {
        storage = Array(elements)
        head = 0
    }

    /// Changes the last element in place; false when the queue is empty.
    @discardableResult
    @inlinable public mutating func updateLast(_ change: (inout Element) -> Void) -> Bool {
        guard !isEmpty, let last = storage.indices.last else { return false }
        change(&storage[last])
        return true
    }
}

extension FIFOQueue: Sendable where Element: Sendable {}
