/// What each prepared statement name of a read-only session may stand for on the server, so
/// that a Bind can be judged again against the catalog as it is now.
///
/// PostgreSQL analyses a prepared statement again whenever its plan is invalidated (plancache.c
/// `RevalidateCachedQuery`: DDL on anything it uses, `DISCARD PLANS`, a `search_path` change,
/// new statistics), so a function overload planted after the Parse is chosen then; and it reads
/// domain constraints and row-level security policies at each executor start. A judgment made
/// at Parse time does not hold at a later Bind (found in review: `Parse s1 = SELECT lower(a)
/// FROM t`, then another role creates `public.lower(varchar)` that writes, then `DISCARD PLANS`
/// and `Execute s1` ran it). The gate therefore judges the statement's text again at each Bind.
///
/// The server's replies decide which Parse and Close took effect: after an error the server
/// skips every message up to Sync (postgres.c `ignore_till_sync`), a named Parse of a name in
/// use fails (42P05) and leaves the old statement. Kept as a superset, never a guess: the
/// definitions and closes of a batch (up to its ReadyForQuery) are applied exactly when the
/// batch had no error; when it had one, a definition adds its text to those the name may
/// stand for, and a close removes nothing. A Bind is judged against every text its name may
/// stand for, including those of batches not yet answered.
///
/// Bounded: at most ``maxBytes`` of text in all, and ``maxTextsPerName`` texts per name. A name
/// whose texts would go beyond either is *lost*: a Bind of it is refused (fail closed) until a
/// batch without error defines it again.
struct PreparedTexts {
    struct Text: Hashable {
        var sql: String
        var parameterTypes: [Int32]

        var bytes: Int { sql.utf8.count + 4 * parameterTypes.count }
    }

    /// Keyed as PostgreSQL keys them: the first 63 bytes (``SessionMachine/StatementName``).
    typealias Name = SessionMachine.StatementName

    enum Change {
        /// A protocol Parse, or an SQL PREPARE that ran in its Query.
        case define(Name, Text)
        /// A text that defines the name if and when it runs (a protocol Parse of a PREPARE):
        /// added to the name's texts, never in place of them.
        case mayDefine(Name, Text)
        case close(Name)
    }

    /// Statement text kept per session, in all: as much as transaction pooling keeps per client
    /// (a psycopg cache of 90 statements of 128 kB is 11.5 MB).
    static let maxBytes = 16 << 20
    /// Texts one name may stand for: each failed Parse of a name in use adds one (found in
    /// review: 900 failed Parses of 16 kB made every 20-byte Bind classify 14 MB). Beyond it
    /// the name is lost.
    static let maxTextsPerName = 16

    /// Names and the texts the server may hold under them, as of the batches answered.
    private var settled: [Name: Set<Text>] = [:]
    /// Names whose texts were dropped for the bound.
    private var lost: Set<Name> = []
    /// Changes of the batches sent and not yet answered, by batch number, oldest first.
    private var open: [(batch: UInt64, changes: [Change])] = []
    private var settledBytes = 0
    private var openBytes = 0
    /// This session's part of the process-wide bound (``KeptTextBudget``).
    private var share: KeptTextShare

    init(budget: KeptTextBudget? = nil) {
        share = KeptTextShare(budget)
    }

    /// Whether a text of `bytes` may be kept under the process-wide bound (the per-session one
    /// loses a name instead, ``defined(_:_:inBatch:certain:)``).
    mutating func processBoundAllows(_ bytes: Int) -> Bool {
        share.allows(bytes, keeping: settledBytes + openBytes)
    }

    /// The session ends: what it kept no longer counts.
    mutating func releaseShare() {
        share.report(0)
    }

    /// What a Bind of `name` must be judged against: nil when the name is lost; empty when no
    /// text is known (never prepared by this session: the server answers 26000).
    ///
    /// `batch`: the batch the Bind is sent in. When the name's latest change in that batch is
    /// a Parse (or a Close) sent before it, the Bind can run that text only (or nothing): had
    /// the Parse or anything after it failed, the server would skip the Bind with the rest of
    /// the batch (found in review: judging such Binds against every text the name stood for
    /// broke psycopg's unnamed statements after 16 failed queries, and pipelines of 16).
    func candidates(_ name: Name, inBatch batch: UInt64? = nil) -> [Text]? {
        if let batch, let last = open.last, last.batch == batch {
            latest: for change in last.changes.reversed() {
                switch change {
                case .define(name, let text): return [text]
                case .close(name): return []
                case .mayDefine(name, _): break latest
                case .define, .mayDefine, .close: continue
                }
            }
        }
        guard !lost.contains(name) else { return nil }
        // Nothing sent and unanswered (a statement prepared in an earlier batch): what settled.
        if open.isEmpty, let texts = settled[name], texts.count == 1 { return Array(texts) }
        var out = settled[name] ?? []
        for batch in open {
            for change in batch.changes {
                switch change {
                case .define(name, let text), .mayDefine(name, let text): out.insert(text)
                case .define, .mayDefine, .close: break
                }
            }
        }
        return out.sorted { $0.sql < $1.sql }
    }

    /// A Parse the gate let through, sent in batch `batch` (counted from the session start).
    mutating func defined(_ name: Name, _ text: Text, inBatch batch: UInt64, certain: Bool = true) {
        // The unnamed statement is never held to the process-wide bound: every extended-protocol
        // query of every driver parses it, and one session's named statements filling the bound
        // must not stop them all (found in review). It is one per session, each at most
        // `readonly_max_statement_size`.
        guard settledBytes + openBytes + text.bytes <= Self.maxBytes, name.isEmpty || processBoundAllows(text.bytes) else {
            lose(name)
            return
        }
        openBytes += text.bytes
        record(certain ? .define(name, text) : .mayDefine(name, text), inBatch: batch)
        share.report(settledBytes + openBytes)
    }

    /// A Close of a statement, sent in batch `batch`.
    mutating func closed(_ name: Name, inBatch batch: UInt64) {
        record(.close(name), inBatch: batch)
    }

    /// The batch's ReadyForQuery arrived; `failed`: an error came in it.
    mutating func batchCompleted(_ batch: UInt64, failed: Bool) {
        while let first = open.first, first.batch <= batch {
            open.removeFirst()
            for change in first.changes {
                switch change {
                case .define(let name, let text):
                    openBytes -= text.bytes
                    if !failed {
                        // Applied in order: the batch's last change of a name is what it holds.
                        lost.remove(name)
                        settle(name, [text])
                    } else if !lost.contains(name) {
                        settle(name, settled[name, default: []].union([text]))
                    }
                case .mayDefine(let name, let text):
                    openBytes -= text.bytes
                    if !lost.contains(name) { settle(name, settled[name, default: []].union([text])) }
                case .close(let name):
                    guard !failed else { continue }
                    lost.remove(name)
                    settle(name, nil)
                }
            }
        }
        share.report(settledBytes + openBytes)
    }

    private mutating func record(_ change: Change, inBatch batch: UInt64) {
        if let last = open.indices.last, open[last].batch == batch {
            open[last].changes.append(change)
        } else {
            open.append((batch, [change]))
        }
    }

    /// Moving a definition from an open batch to the settled texts never adds bytes: the
    /// bound was checked when it was defined.
    private mutating func settle(_ name: Name, _ texts: Set<Text>?) {
        if let texts, texts.count > Self.maxTextsPerName {
            lose(name)
            return
        }
        settledBytes -= settled[name]?.reduce(0) { $0 + $1.bytes } ?? 0
        settledBytes += texts?.reduce(0) { $0 + $1.bytes } ?? 0
        settled[name] = texts
    }

    /// Drops every text of `name`, the open batches' too: only a definition sent after this
    /// one can make the name known again.
    private mutating func lose(_ name: Name) {
        settle(name, nil)
        for index in open.indices {
            open[index].changes.removeAll { change in
                switch change {
                case .define(name, _), .mayDefine(name, _): true
                case .define, .mayDefine, .close: false
                }
            }
        }
        openBytes = open.reduce(0) { total, batch in
            batch.changes.reduce(total) { total, change in
                switch change {
                case .define(_, let text), .mayDefine(_, let text): total + text.bytes
                case .close: total
                }
            }
        }
        lost.insert(name)
    }
}
