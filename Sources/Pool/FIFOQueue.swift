/// A first-in first-out queue whose `popFirst` is O(1): a pool's waiters (a thousand clients
/// on twenty server connections) are served from the front at every release, where
/// `Array.removeFirst` would move every other waiter each time. The consumed prefix is
/// dropped once it is half the storage, so the memory stays proportional to the waiters.
struct FIFOQueue<Element> {
    private var storage: [Element] = []
    private var head = 0

    var isEmpty: Bool { head == storage.count }
    var count: Int { storage.count - head }
    var first: Element? { isEmpty ? nil : storage[head] }

    mutating func append(_ element: Element) { storage.append(element) }

    mutating func popFirst() -> Element? {
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
    mutating func removeAll(where matches: (Element) -> Bool) -> [Element] {
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

    mutating func removeAll() {
        storage.removeAll()
        head = 0
    }

    var elements: ArraySlice<Element> { storage[head...] }
}

extension FIFOQueue: Sendable where Element: Sendable {}
