import Audit
import AuditSink
import Config
import EventLoop
import Logging

/// The audit stream's process side: the writer thread, its sinks and one queue per loop.
final class AuditStream: @unchecked Sendable {
    let writer: AuditWriter
    let loopQueues: [AuditQueue]
    /// Process events (reload) that come from no loop.
    let processQueue: AuditQueue

    /// nil when `audit = off`. Throws with a message naming the sink that could not be opened.
    static func start(_ settings: AuditSettings, loops: Int, mailboxes: MailboxDirectory, logger: Logger) throws -> AuditStream? {
        guard settings.enabled else { return nil }
        let sinks = try makeSinks(settings)
        let writer: AuditWriter
        do {
            writer = try AuditWriter(sinks: sinks, policy: settings.queueFull == .drop ? .drop : .backpressure,
                                     clock: { LoopAudit.wallClockMicroseconds() })
        } catch {
            throw ProxyStartupError(description: "could not start the audit writer: \(error)")
        }
        let stream = AuditStream(writer: writer, loops: loops, queueSize: settings.queueSize,
                                 queueMaxBytes: settings.queueMaxBytes)
        let preparer = AuditPreparer()
        writer.prepare = { event, out in preparer.prepare(event, into: &out) }
        writer.onRoom = {
            for index in 0..<loops { mailboxes.box(index)?.post(AuditRoom()) }
        }
        writer.onSinkStatus = { name, error in
            if let error {
                logger.error("audit sink \(name) failed: \(error); retrying, events are kept")
            } else {
                logger.info("audit sink \(name) recovered")
            }
        }
        writer.start()
        return stream
    }

    static func makeSinks(_ settings: AuditSettings) throws -> [any AuditSink] {
        var sinks: [any AuditSink] = []
        let fsync: AuditFsync = switch settings.jsonFsync {
        case .off: .off
        case .batch: .batch
        case .interval(let every): .interval(every)
        }
        for sink in settings.sinks {
            switch sink {
            case .journald:
                sinks.append(JournalSink(fields: settings.journaldFields == .compact ? .compact : .full))
            case .json(let path):
                do {
                    sinks.append(try JSONLinesSink(path: path, fsync: fsync))
                } catch {
                    throw ProxyStartupError(description: "could not open audit file \"\(path ?? "stdout")\": \(error)")
                }
            }
        }
        return sinks
    }

    private init(writer: AuditWriter, loops: Int, queueSize: Int, queueMaxBytes: Int) {
        self.writer = writer
        loopQueues = (0..<loops).map { _ in writer.makeQueue(capacity: queueSize, maxBytes: queueMaxBytes) }
        processQueue = writer.makeQueue(capacity: 1024)
    }

    func loopAudit(_ index: Int) -> LoopAudit {
        LoopAudit(queue: loopQueues[index], policy: writer.policy)
    }

    /// `reload` event: ok, or refused with the errors (file:line).
    /// `partial`: applied except pg_hba.conf or pg_ident.conf, kept at their previous rules.
    func reloaded(ok: Bool, path: String, errors: String? = nil, partial: Bool = false) {
        let result = partial ? "partial" : ok ? "ok" : "refused"
        var details = [AuditDetail("RESULT", result), AuditDetail("CONFIG_FILE", path)]
        if let errors { details.append(AuditDetail("REASON", errors)) }
        processQueue.submitOrDrop(AuditEvent(kind: .reload, timeMicroseconds: LoopAudit.wallClockMicroseconds(),
                                             priority: ok && !partial ? .info : .warning, details: details,
                                             summary: ok && !partial ? "configuration reloaded"
                                                 : partial ? "configuration reloaded except files with errors: \(errors ?? "")"
                                                 : "configuration reload refused: \(errors ?? "")"))
    }
}
