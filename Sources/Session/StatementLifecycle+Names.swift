/// The names a session's extended-protocol messages define, as the server has them
/// (``StatementLifecycle``): prepared statements and portals, and the texts recorded for those
/// whose text is not known here.
extension StatementLifecycle {
    /// A bound portal: its statement's text and values, and whether an Execute of it already
    /// stopped at its row limit (PortalSuspended) and was recorded then.
    struct Portal: Sendable {
        var text: String
        var textKnown: Bool
        var parameters: [String?]?
        var recorded = false
        var order: UInt64
    }

    /// What a Bind or Close does to the names once done, on `statements` and `portals` or (for
    /// a batch's failure record, and for statements in flight at the session's end) on a copy
    /// of what they would be.
    struct Names: Sendable {
        var statements: [String: (text: String, order: UInt64)]
        var portals: [String: Portal]
        var definitions: UInt64

        /// The text a Bind of `statement` runs.
        func statementText(_ statement: String) -> (text: String, known: Bool) {
            statements[statement].map { ($0.text, true) } ?? (StatementLifecycle.unknownStatementText(statement), false)
        }

        /// The portal an Execute of `portal` runs.
        func portal(_ name: String) -> Portal {
            portals[name] ?? Portal(text: StatementLifecycle.unknownPortalText(name), textKnown: false, order: 0)
        }

        mutating func define(statement name: String, text: String) {
            if statements.count >= StatementLifecycle.maxNames, statements[name] == nil,
               let oldest = statements.min(by: { $0.value.order < $1.value.order })?.key {
                statements[oldest] = nil
            }
            definitions += 1
            statements[name] = (text, definitions)
        }

        mutating func bind(portal name: String, statement: String, parameters: [String?]?) {
            if portals.count >= StatementLifecycle.maxNames, portals[name] == nil,
               let oldest = portals.min(by: { $0.value.order < $1.value.order })?.key {
                portals[oldest] = nil
            }
            definitions += 1
            let source = statementText(statement)
            portals[name] = Portal(text: source.text, textKnown: source.known, parameters: parameters, order: definitions)
        }

        mutating func close(isStatement: Bool, name: String) {
            if isStatement { statements[name] = nil } else { portals[name] = nil }
        }
    }

    /// The text recorded for an Execute of a statement whose text is not known here (prepared
    /// by SQL `PREPARE`, or its name forgotten). Names are cut at 63 bytes, as PostgreSQL
    /// keeps them (NAMEDATALEN).
    package static func unknownStatementText(_ name: String) -> String {
        name.isEmpty ? "<unknown unnamed prepared statement>" : "<unknown prepared statement \"\(shortName(name))\">"
    }

    /// The text recorded for an Execute of a portal not bound by a Bind this session followed
    /// (a cursor of SQL `DECLARE`, or a forgotten name).
    package static func unknownPortalText(_ name: String) -> String {
        name.isEmpty ? "<unknown unnamed portal>" : "<unknown portal \"\(shortName(name))\">"
    }

    static func shortName(_ name: String) -> String {
        name.utf8.count <= 63 ? name : String(decoding: name.utf8.prefix(63), as: UTF8.self)
    }
}
