import Testing
@testable import Policy

@Test func smoke() {
    let c = StatementClassifier()
    for sql in ["select 1", "insert into t values (1)", "with x as (delete from t returning *) select * from x",
                "select nextval('s')", "set role admin", "begin read write", "begin read only", "selec 1",
                "drop table t", "explain select 1", "explain analyze delete from t", "copy t to stdout",
                "select * from t for update", "select set_config('role','x',false)", "create statistics s on a from t",
                "alter materialized view m rename to n", "vacuum", "analyze t"] {
        let r = c.classify(sql: sql)
        print(sql, "=>", r.statements.map { "\($0.commandTag) \($0.auditClass.rawValue) \($0.refusal?.message ?? "ok")" }, r.syntaxError as Any)
    }
}
