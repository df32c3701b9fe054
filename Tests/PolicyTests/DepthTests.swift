import Testing
import CPgQuery
@testable import Policy

/// Hostile shapes must not crash the proxy (issue 8, item 2). Every text gets a nesting bound
/// from PostgreSQL's lexer before anything recursive runs (``NestingBound``); above the
/// budget of the thread's stack it is refused as PostgreSQL refuses it (54001), deep brackets
/// hit Bison's own limit first (42601 "memory exhausted"), long flat lists are walked
/// iteratively. Tests that go near the limit run on a thread created as the proxy creates
/// classifier threads: with ``ClassifierBudget/threadStackSize`` of stack.
@Suite struct DepthTests {
    static let budget = ClassifierBudget.threadStackSize

    static func classify(_ sql: String, stackSize: Int = budget) -> ClassificationResult {
        StackThread.value(stackSize: stackSize) { StatementClassifier().classify(sql: sql) }
    }

    /// The largest `n` whose bound is within `limit`: every shape's bound grows linearly with
    /// `n`, so two scans give the slope and two more confirm the answer.
    static func largestWithin(_ limit: Int, _ shape: DepthShape) -> Int {
        let one = NestingBound.of(shape.build(1)) ?? 0
        let slope = (NestingBound.of(shape.build(2)) ?? 0) - one
        precondition(slope > 0, "\(shape) does not nest")
        let n = (limit - one) / slope + 1
        precondition((NestingBound.of(shape.build(n)) ?? .max) <= limit, "\(shape) n=\(n)")
        precondition((NestingBound.of(shape.build(n + 1)) ?? 0) > limit, "\(shape) n=\(n + 1)")
        return n
    }

    static func isDepthRefusal(_ refusal: Refusal?) -> Bool {
        refusal == .stackDepthExceeded || refusal?.message.hasPrefix("memory exhausted") == true
    }

    @Test func deeplyNestedExpressionIsRefusedNotCrashing() {
        let depth = 100_000
        let sql = "select " + String(repeating: "(", count: depth) + "1" + String(repeating: ")", count: depth)
        let result = StatementClassifier().classify(sql: sql)
        #expect(!result.isAllowedForReadOnly)
        // PostgreSQL: ERROR 42601 memory exhausted at or near "(" (Bison's stack, before any
        // stack depth check).
        #expect(result.syntaxError?.sqlState == "42601")
        #expect(result.syntaxError?.message.hasPrefix("memory exhausted at or near") == true)
    }

    @Test func deeplyNestedSubqueriesWithAWriterDeepInside() {
        let depth = 200
        var sql = "select pg_terminate_backend(1)"
        for _ in 0..<depth { sql = "select * from (\(sql)) s" }
        let result = StatementClassifier().classify(sql: sql)
        #expect(result.firstRefusal?.message == "function pg_terminate_backend() is not allowed for a read-only identity")
    }

    @Test func longInListIsAllowed() {
        let list = (0..<20_000).map(String.init).joined(separator: ",")
        let result = StatementClassifier().classify(sql: "select * from t where a in (\(list))")
        #expect(result.isAllowedForReadOnly)
    }

    /// The bound never under-counts: the real tree (protobuf messages, two per bound level)
    /// is never deeper than the bound says, for every shape at several sizes.
    @Test(arguments: DepthShape.all + DepthShape.flat)
    func boundCoversTheRealTreeDepth(_ shape: DepthShape) {
        for n in [1, 2, 3, 10, 100, 1_000] {
            let sql = shape.build(n)
            let bound = NestingBound.of(sql) ?? 0
            let depth = StackThread.value(stackSize: Self.budget) { TreeDepth.messages(sql) }
            guard let depth else { continue } // Bison refused it; nothing recursive ran
            #expect(depth <= 2 * bound + 8, "\(shape) n=\(n): \(depth) messages deep, bound \(bound)")
        }
    }

    /// The same for random expressions mixing every construct the bound treats differently.
    @Test func boundCoversRandomExpressions() {
        let (checked, failures) = StackThread.value(stackSize: Self.budget) { () -> (Int, [String]) in
            var generator = RandomExpressions(seed: 0x5EED)
            var checked = 0
            var failures: [String] = []
            for _ in 0..<1_500 {
                let sql = generator.statement()
                let bound = NestingBound.of(sql) ?? 0
                guard let depth = TreeDepth.messages(sql) else { continue }
                checked += 1
                if depth > 2 * bound + 8 { failures.append("\(depth) messages deep, bound \(bound): \(sql)") }
            }
            return (checked, failures)
        }
        #expect(failures.isEmpty, "\(failures.prefix(3))")
        #expect(checked > 500, "enough generated statements parse (\(checked))")
    }

    /// And for random whole statements (joins, set operations, WITH, window frames, …).
    @Test func boundCoversRandomStatements() {
        let (checked, failures) = StackThread.value(stackSize: Self.budget) { () -> (Int, [String]) in
            var checked = 0
            var failures: [String] = []
            for seed: UInt64 in [11, 12] {
                var generator = RandomStatements(seed: seed &* 0x9E37_79B9_7F4A_7C15)
                for _ in 0..<700 {
                    let sql = generator.select(0)
                    let bound = NestingBound.of(sql) ?? 0
                    guard let depth = TreeDepth.messages(sql) else { continue }
                    checked += 1
                    if depth > 2 * bound + 8 { failures.append("\(depth) messages deep, bound \(bound): \(sql)") }
                }
            }
            return (checked, failures)
        }
        #expect(failures.isEmpty, "\(failures.prefix(3))")
        #expect(checked > 400, "enough generated statements parse (\(checked))")
    }

    /// Just within the limit a statement classifies as it would at any depth; one step beyond
    /// it is refused with PostgreSQL's code for the shape; nothing crashes.
    @Test(arguments: DepthShape.all)
    func atTheLimitClassifiesAndBeyondIsRefused(_ shape: DepthShape) {
        let limit = ClassifierBudget.maxNestingDepth
        let n = Self.largestWithin(limit, shape)
        let within = Self.classify(shape.build(n))
        let beyond = Self.classify(shape.build(n + 1))
        if shape.bracketed {
            // Bison's stack (YYMAXDEPTH 10000) ends bracket nesting long before our limit,
            // with PostgreSQL's own error; below that they classify.
            #expect(within.syntaxError?.message.hasPrefix("memory exhausted at or near") == true, "\(shape) n=\(n)")
            #expect(beyond.syntaxError?.message.hasPrefix("memory exhausted at or near") == true, "\(shape) n=\(n + 1)")
            let result = Self.classify(shape.build(1_000))
            #expect(result.syntaxError == nil, "\(shape) n=1000: \(String(describing: result.syntaxError))")
        } else {
            #expect(within.syntaxError == nil, "\(shape) n=\(n): \(String(describing: within.syntaxError))")
            #expect(beyond.syntaxError == .stackDepthExceeded, "\(shape) n=\(n + 1)")
            #expect(beyond.firstRefusal?.sqlState == "54001")
        }
    }

    /// What PostgreSQL 15 runs (default max_stack_depth, 2MB) classifies normally here.
    @Test(arguments: DepthShape.all.filter { $0.postgresMaximum != nil })
    func whatPostgreSQLRunsIsNotRefusedForDepth(_ shape: DepthShape) {
        let result = Self.classify(shape.build(shape.postgresMaximum!))
        #expect(!Self.isDepthRefusal(result.firstRefusal), "\(shape): \(String(describing: result.firstRefusal))")
    }

    /// Lists and AND/OR chains are flat in the tree (gram.y makeAndExpr/makeOrExpr): no length
    /// of them is refused for depth.
    @Test(arguments: DepthShape.flat)
    func flatShapesAreNeverRefusedForDepth(_ shape: DepthShape) {
        #expect((NestingBound.of(shape.build(100_000)) ?? .max) < 10, "\(shape)")
        let result = StatementClassifier().classify(sql: shape.build(5_000))
        #expect(!Self.isDepthRefusal(result.firstRefusal), "\(shape)")
    }

    /// The budget is what makes the limit safe, not the platform's default stacks: a statement
    /// at the limit needs more than the 8 MB of a default main or Linux thread, and on such a
    /// thread — or a 512 KB one (Darwin's secondary threads) — the limit shrinks to fit, so the
    /// same text is refused rather than overflowing.
    @Test func theLimitNeedsTheBudgetedStackAndSmallerStacksRefuseInstead() {
        let shape = DepthShape.all[0] // 1+1+…
        let sql = shape.build(Self.largestWithin(ClassifierBudget.maxNestingDepth, shape))
        nonisolated(unsafe) var result: ClassificationResult?
        let used = StackThread.run(stackSize: Self.budget, measure: true) {
            result = StatementClassifier().classify(sql: sql)
        }
        #expect(result?.isAllowedForReadOnly == true)
        #expect(used > 8 << 20, "the statement at the limit used \(used) bytes of stack")
        #expect(used < Self.budget - ClassifierBudget.stackReserve / 2, "used \(used) bytes of stack")

        for stackSize in [8 << 20, 512 << 10, 256 << 10] {
            let small = Self.classify(sql, stackSize: stackSize)
            #expect(small.syntaxError == .stackDepthExceeded, "on a \(stackSize)-byte stack")
        }
        // On an 8 MB stack ordinary statements are untouched.
        let ordinary = Self.classify("select a, b + 1 from t where c = 2 and d in (select e from u)", stackSize: 8 << 20)
        #expect(ordinary.isAllowedForReadOnly)
        let moderate = Self.classify(shape.build(3_000), stackSize: 8 << 20)
        #expect(moderate.isAllowedForReadOnly)
    }

    /// The cache normalizes with pg_query_normalize, which recurses too: the check comes first,
    /// and depth refusals are not cached.
    @Test func theCachingClassifierChecksBeforeNormalizing() {
        let shape = DepthShape.all[0]
        let sql = shape.build(Self.largestWithin(ClassifierBudget.maxNestingDepth, shape) + 1)
        let (first, second, count) = StackThread.value(stackSize: Self.budget) {
            var cache = CachingStatementClassifier()
            return (cache.classify(sql: sql), cache.classify(sql: sql), cache.count)
        }
        #expect(first.syntaxError == .stackDepthExceeded)
        #expect(second.syntaxError == .stackDepthExceeded)
        #expect(count == 0)
    }

    /// A parse tree beyond ``ClassifierBudget/maxParseTreeBytes`` is refused (54000) before it
    /// is unpacked or walked.
    @Test func aHugeParseTreeIsRefused() {
        let huge = "select '" + String(repeating: "x", count: ClassifierBudget.maxParseTreeBytes) + "'"
        let refused = StatementClassifier().classify(sql: huge)
        #expect(refused.syntaxError?.sqlState == "54000")
        let large = "select '" + String(repeating: "x", count: ClassifierBudget.maxParseTreeBytes / 2) + "'"
        #expect(StatementClassifier().classify(sql: large).isAllowedForReadOnly)
    }
}

/// The hand-read token stream agrees with protobuf-c's unpack of the same bytes.
@Suite struct ScanTokensTests {
    @Test func readsTheSameTokensAsProtobufC() {
        let texts = ["select 1", "select a, b::int from t where x = 'y' and z between 1 and 2 -- c",
                     "/* c */ with q as (select $1) select case when true then (1) end, array[1] from q union select 2",
                     (DepthShape.all + DepthShape.flat).map { $0.build(300) }.joined(separator: ";\n")]
        for text in texts {
            let scan = pg_query_scan(text)
            defer { pg_query_free_scan_result(scan) }
            let buffer = UnsafeRawBufferPointer(start: UnsafeRawPointer(scan.pbuf.data!), count: scan.pbuf.len)
            var read: [UInt32] = []
            #expect(ScanTokens.forEach(in: buffer) { read.append($0.rawValue) })
            let unpacked = scan.pbuf.data.withMemoryRebound(to: UInt8.self, capacity: scan.pbuf.len) {
                pg_query__scan_result__unpack(nil, scan.pbuf.len, $0)
            }!
            defer { pg_query__scan_result__free_unpacked(unpacked, nil) }
            let expected = (0..<unpacked.pointee.n_tokens).map { unpacked.pointee.tokens[$0]!.pointee.token.rawValue }
            #expect(read == expected)
            #expect(!read.isEmpty)
        }
        // Truncated or garbled encodings are rejected, never half-read.
        let scan = pg_query_scan("select 1 + 2")
        defer { pg_query_free_scan_result(scan) }
        for cut in 1..<scan.pbuf.len {
            let buffer = UnsafeRawBufferPointer(start: UnsafeRawPointer(scan.pbuf.data!), count: cut)
            var count = 0
            let complete = ScanTokens.forEach(in: buffer) { _ in count += 1 }
            #expect(!complete || count < 4, "cut at \(cut)")
        }
    }
}
