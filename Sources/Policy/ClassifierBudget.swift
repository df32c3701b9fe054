import CPgQuery

/// The stack and size budget of statement classification (issue 8, items 2 and 3).
///
/// Parsing with libpg_query and reading its tree recurse once per tree level in C (protobuf
/// conversion and pack inside `pg_query_parse_protobuf`, protobuf-c unpack and free,
/// `pg_query_normalize`), and a stack overflow kills the whole process. So every text is first
/// given a nesting bound by ``NestingBound`` (PostgreSQL's lexer, flat), and a text whose bound
/// exceeds what the calling thread's stack can hold is refused as PostgreSQL refuses an
/// expression too deep for its stack: SQLSTATE 54001 "stack depth limit exceeded"
/// (check_stack_depth, src/backend/tcop/postgres.c). Our own walks are iterative.
///
/// Measured on libpg_query 15-4.0.0 (Debian), bytes of stack per tree level of a left-deep
/// operator chain: protobuf-c unpack 1935 (the most), normalize 392, protobuf conversion and
/// pack 361, free 166, raw parse and lexer 0 (constant ~17 kB). Those are C frames, the same in
/// debug and release builds; docs/READONLY.md ("Stack and size budget") has the table.
public enum ClassifierBudget {
    /// The stack size classifier threads must be created with. A thread with less stack still
    /// classifies safely, with a lower nesting limit (``nestingLimit(stackBytes:)``).
    public static let threadStackSize: Int = 64 << 20

    /// Stack bytes one level of ``NestingBound`` may take: the measured worst (protobuf-c
    /// unpack of `1+1+…`, 1935 bytes a level), rounded up.
    public static let stackBytesPerLevel = 2048

    /// Stack kept free for everything that does not grow with nesting: the lexer and parser's
    /// constant frames (~17 kB), the classifier's own frames (debug builds take the most) and
    /// whatever the thread's owner needs around the call.
    public static let stackReserve = 512 << 10

    /// Stack a classifier thread's own frames may take before they call the classifier (its
    /// thread-local storage and run loop), counted out of ``threadStackSize``.
    public static let callerAllowance = 64 << 10

    /// The nesting bound above which a statement is refused (54001) on a thread with
    /// ``threadStackSize`` of stack: 32 480. PostgreSQL 15 with its default max_stack_depth
    /// (2 MB) stops at about 4 100 for `1+1+…` and 13 000 for `x::int::int…` (two levels each
    /// here), so every chain PostgreSQL accepts classifies normally.
    public static let maxNestingDepth = nestingLimit(stackBytes: threadStackSize - callerAllowance)

    /// The largest parse tree classified, as libpg_query's protobuf encoding, checked before it
    /// is unpacked: unpacking, walking and freeing take time and memory in proportion to it
    /// (an `IN` list of a million integers is 13 MB and takes 5.4 s to classify in a release
    /// build, most of it in libpg_query and protobuf-c). Larger trees are refused with 54000.
    public static let maxParseTreeBytes = 16 << 20

    /// Texts up to this size are everyday statements: classified on their own threads, apart
    /// from longer ones. Under it nothing nests deep enough to cost much (``NestingBound``'s
    /// ceiling for 8 kB is about 8 100 levels, PostgreSQL's own limit for `1+1+…`): the
    /// costliest shapes take tens of milliseconds in a release build, where a 64 kB chain at
    /// the nesting limit takes over a second (protobuf-c's pack moves each nested message once
    /// per level above it: quadratic in depth). `portcullis-classifier-bench depth` measures both.
    public static let everydayTextLimit = 8 * 1024

    /// The nesting limit for a thread with `stackBytes` of stack left.
    public static func nestingLimit(stackBytes: Int) -> Int {
        max(0, (stackBytes - stackReserve) / stackBytesPerLevel)
    }

    /// The nesting limit on the calling thread: ``maxNestingDepth``, or less when this thread
    /// has less stack left than a classifier thread — so no caller can overflow, whatever thread
    /// it runs on (a loop thread, a test, the main thread).
    public static func nestingLimitOnCurrentThread() -> Int {
        min(maxNestingDepth, nestingLimit(stackBytes: Int(cpq_stack_remaining())))
    }

    /// The nesting bound of `sql` (``NestingBound``), or nil when PostgreSQL's lexer rejects it;
    /// for probes and benchmarks (the classifier applies it itself).
    public static func nestingBound(of sql: String) -> Int? {
        NestingBound.of(sql)
    }

    /// nil when `sql` may be handed to libpg_query's recursive entry points on this thread, else
    /// the whole-text refusal. Texts too short to reach the limit skip the lexer.
    static func nestingRefusal(for sql: String) -> Refusal? {
        // The lexer itself first (NestingBound and the syntax check below both run it).
        if let refusal = LexerCost.refusal(for: sql) { return refusal }
        let limit = nestingLimitOnCurrentThread()
        if NestingBound.ceiling(byteCount: sql.utf8.count) <= limit { return nil }
        if let bound = NestingBound.of(sql), bound <= limit { return nil }
        // Too deep, or PostgreSQL's lexer rejects the text (then so does the parser, before it
        // builds any output). PostgreSQL raw-parses before anything checks its stack, so its
        // syntax errors — Bison's "memory exhausted" for deep brackets included — come first;
        // the raw parse alone is flat (Bison's stack is on the heap).
        return StatementSplitter.syntaxError(sql) ?? .stackDepthExceeded
    }
}

extension Refusal {
    /// PostgreSQL's check_stack_depth error (src/backend/tcop/postgres.c), SQLSTATE 54001
    /// statement_too_complex. PostgreSQL's hint ("Increase the configuration parameter
    /// max_stack_depth …") is not sent: the limit here is the proxy's, not the server's.
    public static let stackDepthExceeded = Refusal(sqlState: "54001", message: "stack depth limit exceeded",
                                                   isPostgreSQLText: true)

    /// A parse tree larger than ``ClassifierBudget/maxParseTreeBytes``: SQLSTATE 54000
    /// program_limit_exceeded, the class PostgreSQL uses for its own size limits.
    static func parseTreeTooLarge(bytes: Int) -> Refusal {
        Refusal(sqlState: "54000",
                message: "statement is too large: its parse tree takes \(bytes) bytes, more than the \(ClassifierBudget.maxParseTreeBytes) allowed for a read-only identity",
                isPostgreSQLText: false)
    }
}
