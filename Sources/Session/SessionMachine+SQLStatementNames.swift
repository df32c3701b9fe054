import Policy
import Wire

/// Transaction pooling: prepared statements named in SQL. PostgreSQL keeps SQL-level and
/// protocol-level prepared statements in one hash table per session (prepare.c
/// StorePreparedStatement / FetchPreparedStatement), so `EXECUTE s1`, `EXPLAIN EXECUTE s1`,
/// `CREATE TABLE … AS EXECUTE s1`, `DEALLOCATE s1` and `PREPARE s1` reach a protocol-level
/// statement of that name — on a shared server, another client's (found in review: client B's
/// `EXECUTE s1` ran the statement client A had left there; PostgreSQL directly: 26000).
///
/// Before such a text goes up, each name it uses (``StatementClassification/preparedStatementNames``)
/// is made what it is for this client in PostgreSQL, with the same Close and Parse the proxy
/// slips in before a Bind (``prepareIfNeeded(_:into:)``): the client's own protocol statement is
/// prepared on this server if it is not there (so its SQL EXECUTE runs it, and a PREPARE of the
/// name answers 42P05, as directly); a name it never prepared that the server may hold for
/// someone else is closed (so the server answers 26000, or a PREPARE succeeds). Names it
/// prepared in SQL, or keeps on its pinned server, are left alone: they are on the server the
/// session is pinned to.
///
/// A SQL DEALLOCATE of one of the client's protocol statements removes it where the proxy
/// cannot see which (the CommandComplete tag names no statement): the statement stays on this
/// server only and the session pins, so the server's answer is the truth from then on. In a
/// Parse (run later, at Execute, perhaps many times) any such reference pins the session, so the
/// names stay as they were made here.
extension SessionMachine {
    /// A Query or Parse text, allowed through: what its SQL references need first, into `out`.
    mutating func sqlStatementReferences(_ classification: ClassificationResult, isParse: Bool, into out: inout ByteBuffer) {
        var seen: Set<StatementName> = []
        for statement in classification.statements {
            for text in statement.preparedStatementNames {
                let name = StatementName(Array(text.utf8))
                guard !name.isEmpty else { continue }
                if seen.insert(name).inserted {
                    if isParse {
                        _ = prepareIfNeeded(name, into: &out)
                    } else {
                        queryReferenceNeeds(name, deallocating: statement.commandTag == "DEALLOCATE", into: &out)
                    }
                }
                switch statement.commandTag {
                case "PREPARE":
                    statements.clientSQL.insert(name)
                    confirmedStatements.clientSQL.insert(name)
                case "DEALLOCATE":
                    keepOnServerOnly(name)
                default:
                    break
                }
            }
        }
        if isParse && !seen.isEmpty { notePins(.preparedStatement) }
    }

    /// Before a simple Query nothing slipped in may fail: after a failed message PostgreSQL skips
    /// everything up to a Sync, the Query too, and none follows (postgres.c, ignore_till_sync) —
    /// found in review: the client's kept statement parsed again before its `EXECUTE` hung the
    /// session once it no longer parsed (a column dropped) or the transaction had failed. A Close
    /// never fails (exec_close_message), so another client's statement of that name is closed as
    /// before; the client's own is not prepared again for `EXECUTE` (it answers 26000 on a server
    /// that lacks it: docs/ARCHITECTURE.md), and for `DEALLOCATE` (psycopg evicts its cache that
    /// way) a `SELECT 1` is prepared under the name, which parses in any transaction that has not
    /// failed — in a failed one the DEALLOCATE fails with 25P02, as directly.
    private mutating func queryReferenceNeeds(_ name: StatementName, deallocating: Bool, into out: inout ByteBuffer) {
        guard name.isASCII, !statements.clientPinned.contains(name) else { return }
        let own = statements.client[name]
        if let own, statements.server.byName[name] == own { return }
        if statements.server.byName[name] != nil || (statements.server.uncertain && !statements.clientSQL.contains(name)) {
            FrontendMessage.encodeClose(.statement, name: name.bytes, into: &out)
            expect(.injectedClose(name), injected: true)
        }
        guard own != nil, deallocating, transactionStatus != .failed else { return }
        let standIn = PreparedStatement(query: Array("SELECT 1".utf8), parameterTypes: [])
        standIn.parse(name).encode(into: &out)
        expect(.injectedParse(name, standIn), injected: true)
    }

    /// A text the classifier could not read (over the size bound, too deep, not UTF-8 in the
    /// client's encoding) may name any statement in SQL (found in review: `EXECUTE s1` padded
    /// past the bound ran another client's `s1`): every statement this server holds that is not
    /// the client's is closed first. A server whose set is uncertain may hold names the proxy
    /// does not know; those it cannot close (docs/ARCHITECTURE.md).
    mutating func closeOtherClientsStatements(into out: inout ByteBuffer) {
        let others = statements.server.byName.filter { name, statement in
            statements.client[name] != statement && !statements.clientSQL.contains(name) && !statements.clientPinned.contains(name)
        }
        for name in others.keys.sorted(by: { $0.bytes.lexicographicallyPrecedes($1.bytes) }) {
            FrontendMessage.encodeClose(.statement, name: name.bytes, into: &out)
            expect(.injectedClose(name), injected: true)
        }
    }

    /// The client's kept protocol statement `name` is about to be deallocated in SQL: from now
    /// on it exists, or not, on the pinned server only.
    private mutating func keepOnServerOnly(_ name: StatementName) {
        guard statements.client[name] != nil || confirmedStatements.client[name] != nil else { return }
        statements.client[name] = nil
        statements.clientPinned.insert(name)
        confirmedStatements.client[name] = nil
        confirmedStatements.clientPinned.insert(name)
        notePins(.namedProtocolStatement)
    }
}
