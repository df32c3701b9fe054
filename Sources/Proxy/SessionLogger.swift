import Logging

/// A session's log context: the process logger plus the session's own fields (`session`,
/// `client`, then `user`, `database`, `client_cn` as they become known), merged into a line
/// only when that line is written.
///
/// Why not a `Logger` with per-session metadata: every `Logger` copy carrying metadata boxes
/// its handler and keeps a metadata dictionary of its own, about 1.5 KiB per idle client
/// measured with heaptrack (docs/PERFORMANCE.md, "Idle clients") — more than a tenth of what
/// an idle TLS client costs in all. Here an idle session holds a few short strings; the
/// dictionary exists for the length of one log call. The output is the same:
/// `StreamLogHandler` prints metadata sorted by key whichever way it arrived, and
/// `EscapingLogHandler` escapes per-call metadata as it does the handler's own.
struct SessionLogger {
    let base: Logger
    let session: UInt64
    let client: String
    /// The login's user and database, set once at authentication (`connectUpstream`); also
    /// the one place the session keeps them, read again when a reload makes a transaction-mode
    /// session resolve its login anew (``PoolManager/currentTransactionRequest(_:database:user:)``).
    var user: String?
    var database: String?
    var clientCN: String?

    init(base: Logger, session: UInt64, client: String) {
        self.base = base
        self.session = session
        self.client = client
    }

    /// The session's fields as log metadata.
    var metadata: Logger.Metadata {
        var fields: Logger.Metadata = ["session": "\(session)", "client": "\(client)"]
        if let user { fields["user"] = "\(user)" }
        if let database { fields["database"] = "\(database)" }
        if let clientCN { fields["client_cn"] = "\(clientCN)" }
        return fields
    }

    /// A `Logger` carrying the session's fields, for work that outlives the call that starts it
    /// (a cancel forwarded after the session has gone).
    var materialized: Logger {
        var logger = base
        for (key, value) in metadata { logger[metadataKey: key] = value }
        return logger
    }

    func log(_ level: Logger.Level, _ message: @autoclosure () -> Logger.Message,
             metadata extra: @autoclosure () -> Logger.Metadata? = nil,
             file: String = #fileID, function: String = #function, line: UInt = #line) {
        guard base.logLevel <= level else { return }
        var fields = metadata
        if let extra = extra() { fields.merge(extra) { _, call in call } }
        base.log(level: level, message(), metadata: fields, file: file, function: function, line: line)
    }

    func debug(_ message: @autoclosure () -> Logger.Message, metadata: @autoclosure () -> Logger.Metadata? = nil,
               file: String = #fileID, function: String = #function, line: UInt = #line) {
        log(.debug, message(), metadata: metadata(), file: file, function: function, line: line)
    }

    func info(_ message: @autoclosure () -> Logger.Message, metadata: @autoclosure () -> Logger.Metadata? = nil,
              file: String = #fileID, function: String = #function, line: UInt = #line) {
        log(.info, message(), metadata: metadata(), file: file, function: function, line: line)
    }

    func notice(_ message: @autoclosure () -> Logger.Message, metadata: @autoclosure () -> Logger.Metadata? = nil,
                file: String = #fileID, function: String = #function, line: UInt = #line) {
        log(.notice, message(), metadata: metadata(), file: file, function: function, line: line)
    }

    func warning(_ message: @autoclosure () -> Logger.Message, metadata: @autoclosure () -> Logger.Metadata? = nil,
                 file: String = #fileID, function: String = #function, line: UInt = #line) {
        log(.warning, message(), metadata: metadata(), file: file, function: function, line: line)
    }

    func error(_ message: @autoclosure () -> Logger.Message, metadata: @autoclosure () -> Logger.Metadata? = nil,
               file: String = #fileID, function: String = #function, line: UInt = #line) {
        log(.error, message(), metadata: metadata(), file: file, function: function, line: line)
    }
}
