/// Which backups `backup prune` deletes: a pure function of the manifests, the policy and the
/// time (injected), so every rule is unit-tested without files or clocks.
public struct RetentionPolicy: Equatable, Sendable {
    /// Keep the newest N good backups of each database; nil = no count rule.
    public var keepLast: Int?
    /// Keep good backups that started less than this many seconds ago; nil = no age rule.
    public var keepWithinSeconds: Int64?

    public init(keepLast: Int? = nil, keepWithinSeconds: Int64? = nil) {
        self.keepLast = keepLast
        self.keepWithinSeconds = keepWithinSeconds
    }

    /// The ids to delete. Per database:
    /// - with neither rule set, nothing is deleted;
    /// - a good backup is kept when either rule keeps it (the union: "the last N, and
    ///   everything from the last period");
    /// - the newest good backup is always kept, whatever the rules say;
    /// - failed records are deleted once a newer good backup exists (they only explain a gap).
    public func prune(_ manifests: [BackupManifest], now: Int64) -> [String] {
        guard keepLast != nil || keepWithinSeconds != nil else { return [] }
        var doomed: [String] = []
        let byDatabase = Dictionary(grouping: manifests, by: \.database)
        for database in byDatabase.keys.sorted() {
            let all = byDatabase[database] ?? []
            // Newest first; ties broken by id so the result is deterministic.
            let good = all.filter { $0.status == .good }
                .sorted { ($0.startedAt, $0.id) > ($1.startedAt, $1.id) }
            for (rank, manifest) in good.enumerated() {
                if rank == 0 { continue }
                let keptByCount = keepLast.map { rank < $0 } ?? false
                let keptByAge = keepWithinSeconds.map { now - manifest.startedAt < $0 } ?? false
                if !keptByCount && !keptByAge { doomed.append(manifest.id) }
            }
            if let newestGood = good.first {
                doomed += all.filter { $0.status == .failed && $0.startedAt <= newestGood.startedAt }.map(\.id)
            }
        }
        return doomed
    }
}

/// Progress of a long run: bytes, rate and (when the total is known) ETA. Pure arithmetic;
/// the caller supplies the clock.
public struct ProgressReport: Equatable, Sendable {
    public var bytes: Int64
    public var elapsedNanoseconds: Int64
    public var totalBytes: Int64?
    /// The total is a guess (the previous backup's dump size), shown as "~".
    public var totalIsEstimate: Bool

    public init(bytes: Int64, elapsedNanoseconds: Int64, totalBytes: Int64? = nil, totalIsEstimate: Bool = false) {
        self.bytes = bytes
        self.elapsedNanoseconds = elapsedNanoseconds
        self.totalBytes = totalBytes
        self.totalIsEstimate = totalIsEstimate
    }

    /// Bytes per second; 0 before any time passed.
    public var rate: Double {
        elapsedNanoseconds > 0 ? Double(bytes) * 1e9 / Double(elapsedNanoseconds) : 0
    }

    /// Seconds left at the current rate; nil when the total is unknown or nothing moved yet.
    public var etaSeconds: Int64? {
        guard let totalBytes, rate > 0, totalBytes >= bytes else { return nil }
        return Int64((Double(totalBytes - bytes) / rate).rounded(.up))
    }

    public var line: String {
        var text = "\(Self.size(bytes))"
        if let totalBytes, totalBytes >= bytes { text += " of \(totalIsEstimate ? "~" : "")\(Self.size(totalBytes))" }
        text += ", \(Self.size(Int64(rate)))/s"
        if let eta = etaSeconds { text += ", ETA \(eta / 60)m\(eta % 60)s" }
        return text
    }

    /// 1024-based, one decimal: "12.3 MiB".
    public static func size(_ bytes: Int64) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB"]
        var value = Double(bytes)
        var unit = 0
        while value >= 1024 && unit < units.count - 1 { value /= 1024; unit += 1 }
        if unit == 0 { return "\(bytes) B" }
        let tenths = Int((value * 10).rounded())
        return "\(tenths / 10).\(tenths % 10) \(units[unit])"
    }
}
