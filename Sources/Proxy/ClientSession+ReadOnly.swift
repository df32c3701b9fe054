import Session
import EventLoop
import Policy
import Wire
import Auth
import Glibc

/// The read-only gate's shell: the session machine judges every Query, Parse, FunctionCall and
/// Sync of a read-only session (``ReadOnlyGate``) and asks for the classification of Query and
/// Parse texts (``SessionMachine/Action/classify(_:)``); this classifies them — at once on a
/// loop-cache hit, else on a ``ClassifierPool`` thread while the session waits (its loop does
/// not) — and hands the answer back.
extension ClientSession {
    /// A Query or Parse at the front of the client's buffer, waiting for its classification.
    struct PendingClassification {
        let ticket: UInt64
        let timer: TimerID
    }

    /// The ticket of a wait for the catalog (classifier tickets start at 1).
    static let catalogWaitTicket: UInt64 = 0

    /// A fresh 128-bit token per refusal (``ReadOnlyGate``).
    static func refusalToken() -> String {
        Crypto.randomBytes(16).map { byte in
            let hex = String(byte, radix: 16)
            return hex.count == 1 ? "0" + hex : hex
        }.joined()
    }

    /// ``SessionMachine/Action/classify(_:)``: a cache hit is judged at once (and the action
    /// that follows run); a miss waits for a classifier thread. False when the session waits.
    ///
    /// A read-only session whose database's catalog has not been read (start-up, a database
    /// first reached through `*`, or every load so far failed: the refresher tries again within
    /// 2 s), or was last read longer than `catalog_max_age` ago, waits for it, up to
    /// `readonly_classify_timeout` (`catalogDeadline`), looking again every 50 ms; after that
    /// the unloaded snapshot refuses the statement. The loop never waits.
    func classify(_ request: SessionMachine.ClassificationRequest, server: Leg, catalogDeadline: MonotonicInstant? = nil) -> Bool {
        // The catalog judges read-only identities only; a read-write identity's text (transaction
        // pooling) is classified for its pins, which no catalog refusal may disturb.
        let readOnly = session?.configuration.readOnly != nil
        var catalog = CatalogSnapshot.empty
        if readOnly {
            let maxAge = runtime.config.general.effectiveCatalogMaxAge
            let (snapshot, event) = shared.catalogs.snapshot(for: databaseEntry, at: loop.now(), maxAge: maxAge)
            catalog = snapshot
            if let event { logger.error("\(CatalogRefresher.logLine(event, database: databaseEntry, maxAge: maxAge))") }
        }
        if catalog.unloaded != nil, readOnly {
            let deadline = catalogDeadline ?? loop.now() + runtime.config.general.readOnlyClassifyTimeout
            if loop.now() < deadline {
                let next = min(deadline, loop.now() + .milliseconds(50))
                let timer = loop.scheduleTimer(at: next) { [weak self] in
                    guard let self, let pending = self.classifying, pending.ticket == Self.catalogWaitTicket, !self.finished,
                          let server = self.server else { return }
                    self.classifying = nil
                    _ = self.classify(request, server: server, catalogDeadline: deadline)
                    if self.classifying == nil { self.forwardClientBytes() }
                }
                classifying = PendingClassification(ticket: Self.catalogWaitTicket, timer: timer)
                updateClientReadPause()
                return false
            }
        }
        // A parameter declared with a flagged type's OID (a user cast, a domain CHECK calling
        // code) coerces through it although the text names no type.
        let typed = request.parameterTypes.isEmpty ? nil : catalog.refusal(forParameterTypes: request.parameterTypes)
        // Only SQL text names relations: the catalog check applies to Query and Parse.
        let bytes = request.messageLength
        // Where a Query's statements start matters only to a gate keeping the ones before a
        // refusal (read-only, or transaction_pin = refuse); a read-write identity's text in
        // transaction pooling is otherwise classified only for its pins, and a cached answer
        // must not send it to a thread for that.
        let refusing = session?.statementRefusals ?? .readOnly
        let lookup = policy.classify(sql: request.sql, catalog: catalog,
                                     offsetsFor: request.isQuery && refusing.refusesAny ? refusing : nil,
                                     costly: classifierShare.isExhausted(at: loop.now()),
                                     completion: { [weak self] done in self?.classificationArrived(done, bytes: bytes, typed: typed) })
        switch lookup {
        case .hit(let result):
            guard let action = session?.classified(result, parameterTypesRefusal: typed) else { return false }
            return perform(action, server: server)
        case .pending(let ticket):
            let timer = loop.scheduleTimer(at: loop.now() + runtime.config.general.readOnlyClassifyTimeout) { [weak self] in
                self?.classificationTimedOut(ticket)
            }
            classifying = PendingClassification(ticket: ticket, timer: timer)
            updateClientReadPause()
            return false
        }
    }

    private func classificationArrived(_ done: ClassificationDone, bytes: Int, typed: Refusal?) {
        guard let pending = classifying, pending.ticket == done.ticket, !finished else { return }
        loop.cancelTimer(pending.timer)
        classifierShare.used(done.elapsed, at: loop.now())
        logger.debug("statement of \(bytes) bytes classified in \(done.elapsed.millisecondsClamped) ms")
        resume(classification: done.result, statementOffsets: done.statementOffsets, typed: typed)
    }

    private func classificationTimedOut(_ ticket: UInt64) {
        guard let pending = classifying, pending.ticket == ticket, !finished else { return }
        // The thread cannot be stopped inside the parser; its answer is dropped when it comes.
        policy.cancel(ticket)
        logger.warning("classification exceeded readonly_classify_timeout")
        resume(classification: ReadOnlyGate.refusing(SessionMachine.classificationTimedOut), statementOffsets: nil, typed: nil)
    }

    private func resume(classification: ClassificationResult, statementOffsets: [Int]?, typed: Refusal?) {
        classifying = nil
        guard let server, let action = session?.classified(classification, statementOffsets: statementOffsets,
                                                           parameterTypesRefusal: typed) else { return }
        _ = perform(action, server: server)
        forwardClientBytes()
    }

    /// Ends a classification still under way (the session is ending).
    func abandonClassification() {
        guard let pending = classifying else { return }
        classifying = nil
        loop.cancelTimer(pending.timer)
        policy.cancel(pending.ticket)
    }
}
