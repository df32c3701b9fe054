import CPgQuery
@testable import Policy

/// Hostile statement shapes, each repeated `n` times (the probe behind docs/READONLY.md,
/// "Stack and size budget").
struct DepthShape: Sendable, CustomStringConvertible {
    let name: String
    let build: @Sendable (Int) -> String
    /// Nests by brackets (Bison's stack bounds it: 42601 "memory exhausted") rather than by a
    /// left-deep chain (only the nesting bound stops it: 54001).
    let bracketed: Bool
    /// The largest `n` PostgreSQL 15 (max_stack_depth 2MB) runs without error, where it is
    /// limited by depth (measured with scripts/pg-cluster.sh, see docs/READONLY.md).
    let postgresMaximum: Int?

    var description: String { name }

    static func wrap(_ open: String, _ inner: String, _ close: String, _ n: Int) -> String {
        String(repeating: open, count: n) + inner + String(repeating: close, count: n)
    }

    static let all: [DepthShape] = [
        DepthShape(name: "1+1+…", build: { "select 1" + String(repeating: "+1", count: $0) },
                   bracketed: false, postgresMaximum: 4_076),
        DepthShape(name: "'a'||'a'||…", build: { "select 'a'" + String(repeating: "||'a'", count: $0) },
                   bracketed: false, postgresMaximum: 4_076),
        DepthShape(name: "jsonb -> chain", build: { "select '{}'::jsonb" + String(repeating: "->'a'", count: $0) },
                   bracketed: false, postgresMaximum: 4_076),
        DepthShape(name: "::int chain", build: { "select 1" + String(repeating: "::int", count: $0) },
                   bracketed: false, postgresMaximum: 13_085),
        DepthShape(name: "COLLATE chain", build: { "select 'a'" + String(repeating: " collate \"C\"", count: $0) },
                   bracketed: false, postgresMaximum: 10_839),
        DepthShape(name: "IS TRUE chain", build: { "select true" + String(repeating: " is true", count: $0) },
                   bracketed: false, postgresMaximum: 10_839),
        DepthShape(name: "UNION chain", build: { "select 1" + String(repeating: " union select 1", count: $0) },
                   bracketed: false, postgresMaximum: 7_226),
        DepthShape(name: "JOIN chain", build: { n in
            "select 1 from t0" + (1...max(1, n)).map { " join t\($0) on true" }.joined() },
                   bracketed: false, postgresMaximum: nil),
        DepthShape(name: "CROSS JOIN chain", build: { n in
            "select 1 from t0" + (1...max(1, n)).map { " cross join t\($0)" }.joined() },
                   bracketed: false, postgresMaximum: nil),
        DepthShape(name: "((1)+1)+1", build: { "select " + wrap("(", "1", "+1)", $0) }, bracketed: true, postgresMaximum: 4_076),
        DepthShape(name: "1+(1+(…))", build: { "select " + wrap("1+(", "1", ")", $0) }, bracketed: true, postgresMaximum: 3_320),
        DepthShape(name: "((((1))))", build: { "select " + wrap("(", "1", ")", $0) }, bracketed: true, postgresMaximum: 9_960),
        DepthShape(name: "NOT NOT …", build: { "select " + String(repeating: "not ", count: $0) + "true" },
                   bracketed: true, postgresMaximum: 7_665),
        DepthShape(name: "(select (select …))", build: { "select " + wrap("(select ", "1", ")", $0) },
                   bracketed: true, postgresMaximum: 2_111),
        DepthShape(name: "FROM (select … FROM (…))", build: { "select * from " + wrap("(select * from ", "t", ") s", $0) },
                   bracketed: true, postgresMaximum: 1_660),
        DepthShape(name: "nested CASE", build: { "select " + wrap("case when true then ", "1", " end", $0) },
                   bracketed: true, postgresMaximum: 1_989),
        DepthShape(name: "ARRAY[ARRAY[…]]", build: { "select " + wrap("array[", "1", "]", $0) }, bracketed: true, postgresMaximum: nil),
        DepthShape(name: "abs(abs(…))", build: { "select " + wrap("abs(", "1", ")", $0) }, bracketed: true, postgresMaximum: 4_076),
        DepthShape(name: "ROW(ROW(…))", build: { "select " + wrap("row(", "1", ")", $0) }, bracketed: true, postgresMaximum: nil),
        DepthShape(name: "nested WITH", build: { wrap("with a as (", "select 1", ") select 1", $0) },
                   bracketed: true, postgresMaximum: 1_660),
        DepthShape(name: "x IN (select … IN (…))", build: { "select 1 from t where " + wrap("a in (select a from t where ", "true", ")", $0) },
                   bracketed: true, postgresMaximum: nil),
    ]

    /// Flat shapes PostgreSQL runs at any length: long lists must never be refused for depth.
    static let flat: [DepthShape] = [
        DepthShape(name: "AND chain", build: { "select 1 where true" + String(repeating: " and true", count: $0) },
                   bracketed: false, postgresMaximum: nil),
        DepthShape(name: "OR of equalities", build: { "select 1 from t where a = 1" + String(repeating: " or a = 1", count: $0) },
                   bracketed: false, postgresMaximum: nil),
        DepthShape(name: "alternating AND/OR", build: { n in
            "select 1 from t where a = 1" + (0..<n).map { $0 % 2 == 0 ? " and a = 1" : " or a = 1" }.joined() },
                   bracketed: false, postgresMaximum: nil),
        DepthShape(name: "IN list", build: { "select 1 from t where a in (1" + String(repeating: ",1", count: $0) + ")" },
                   bracketed: false, postgresMaximum: nil),
        DepthShape(name: "target list", build: { "select 1" + String(repeating: ", a + 1", count: $0) + " from t" },
                   bracketed: false, postgresMaximum: nil),
        DepthShape(name: "nested JSON literal", build: { "select '" + wrap("{\"a\":", "1", "}", $0) + "'::jsonb" },
                   bracketed: false, postgresMaximum: nil),
    ]
}

/// The real nesting of a parse tree: the longest chain of protobuf messages (a Node and the
/// message it wraps are two), walked with an explicit stack.
enum TreeDepth {
    static func messages(_ sql: String) -> Int? {
        guard case .parsed(let parsed) = ParsedQuery.parse(sql, nestingChecked: true) else { return nil }
        return withExtendedLifetime(parsed) { messageDepth(UnsafeRawPointer(parsed.result)) }
    }

    private static func messageDepth(_ root: UnsafeRawPointer) -> Int {
        var deepest = 0
        var stack: [(UnsafeRawPointer, Int)] = [(root, 1)]
        while let (message, depth) = stack.popLast() {
            deepest = max(deepest, depth)
            let base = message.assumingMemoryBound(to: ProtobufCMessage.self)
            guard let descriptor = base.pointee.descriptor, let fields = descriptor.pointee.fields else { continue }
            for index in 0..<Int(descriptor.pointee.n_fields) {
                let field = fields[index]
                guard field.type == PROTOBUF_C_TYPE_MESSAGE else { continue }
                if field.label == PROTOBUF_C_LABEL_REPEATED {
                    let count = message.load(fromByteOffset: Int(field.quantifier_offset), as: Int.self)
                    guard count > 0, let array = message.load(fromByteOffset: Int(field.offset), as: UnsafeRawPointer?.self)
                    else { continue }
                    for item in 0..<count {
                        if let child = array.load(fromByteOffset: item * 8, as: UnsafeRawPointer?.self) {
                            stack.append((child, depth + 1))
                        }
                    }
                } else {
                    if field.flags & PROTOBUF_C_FIELD_FLAG_ONEOF.rawValue != 0,
                       message.load(fromByteOffset: Int(field.quantifier_offset), as: UInt32.self) != field.id { continue }
                    if let child = message.load(fromByteOffset: Int(field.offset), as: UnsafeRawPointer?.self) {
                        stack.append((child, depth + 1))
                    }
                }
            }
        }
        return deepest
    }
}
