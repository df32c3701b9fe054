import Policy

/// Per-loop statement policy state shared by the loop's sessions: one classification cache,
/// so a statement shape seen by any session on the loop is not parsed again. Confined to the
/// loop's thread like everything else the loop owns.
final class LoopPolicy {
    var classifier: CachingStatementClassifier

    init(cacheCapacity: Int = 4096) {
        classifier = CachingStatementClassifier(capacity: cacheCapacity)
    }
}
