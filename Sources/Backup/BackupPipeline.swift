import BackupFormat
import EventLoop
import Glibc
import Synchronization

/// A bounded hand-off of byte pieces from one thread to another (one producer, one
/// consumer). At most `capacity` pieces wait in it, so a producer faster than its consumer
/// blocks instead of buffering the dump in memory.
///
/// `close` ends the stream normally; `cancel` (either side, on a failure) ends it for good:
/// every later `put` fails and every later `take` returns nil at once. The end is sticky: a
/// side that sees it re-posts its semaphore, so nobody sleeps on an ended hand-off.
/// (Synchronization has no condition variable; two counting semaphores do the sleeping.)
final class HandOff: @unchecked Sendable {
    private struct State {
        var items: [[UInt8]] = []
        var closed = false
        var cancelled = false
    }

    private let state = Mutex(State())
    /// Counts queued pieces (and the close): the consumer sleeps on it.
    private let filled: UnsafeMutablePointer<sem_t>
    /// Counts free slots: the producer sleeps on it.
    private let free: UnsafeMutablePointer<sem_t>

    init(capacity: Int) {
        filled = .allocate(capacity: 1)
        free = .allocate(capacity: 1)
        sem_init(filled, 0, 0)
        sem_init(free, 0, UInt32(max(1, capacity)))
    }

    deinit {
        sem_destroy(filled)
        sem_destroy(free)
        filled.deallocate()
        free.deallocate()
    }

    /// Queues a piece, waiting for a free slot; false once the hand-off was cancelled.
    func put(_ piece: [UInt8]) -> Bool {
        waitForSemaphore(free)
        let queued = state.withLock { state -> Bool in
            guard !state.cancelled else { return false }
            state.items.append(piece)
            return true
        }
        sem_post(queued ? filled : free)
        return queued
    }

    /// The next piece, waiting for one; nil at the end (closed and drained) or once cancelled.
    func take() -> [UInt8]? {
        while true {
            waitForSemaphore(filled)
            let (piece, ended) = state.withLock { state -> ([UInt8]?, Bool) in
                if state.cancelled { return (nil, true) }
                if !state.items.isEmpty { return (state.items.removeFirst(), false) }
                return (nil, state.closed)
            }
            if let piece {
                sem_post(free)
                return piece
            }
            if ended {
                sem_post(filled)
                return nil
            }
        }
    }

    /// The producer is done: the consumer gets nil after the last piece.
    func close() {
        state.withLock { $0.closed = true }
        sem_post(filled)
    }

    /// Ends the stream for both sides and drops what was queued.
    func cancel() {
        state.withLock { state in
            state.cancelled = true
            state.items = []
        }
        sem_post(filled)
        sem_post(free)
    }

    var isCancelled: Bool { state.withLock { $0.cancelled } }
}

/// pg_dump's output → zstd → AES-256-GCM (+ SHA-256 of the stored bytes) → the store, as
/// three stages on three threads joined by bounded hand-offs:
///
///     reader (the caller: pg_dump's pipe) → [raw] → compressor → [compressed] → sealer/writer
///
/// Why: zstd is most of the work (on a table of md5 text ~80 MB/s at level 3 on this class of
/// machine, 72 % of the backup process's samples). Done on the reading thread, as before, every
/// other cost — pipe reads, AES-GCM, SHA-256, copies, writes — was added to zstd's time, while
/// the plain `pg_dump | zstd | openssl` pipeline overlaps them in separate processes. Here the
/// compressor thread does nothing but compress; reading and sealing run beside it.
///
/// Memory stays bounded whatever the dump's size: at most `depth` pieces of at most
/// `pieceSize` bytes wait in each hand-off, plus zstd's window and one encryption chunk. The
/// on-disk format is that of the single-threaded code: the sealer sees the same compressed
/// stream and chunks it in the same 1 MiB chunks.
///
/// Each stage's state (the compressor, the encryptor, the sink, the hash and their counters)
/// is touched by its own thread only, from `start` until `finish`/`abort` joined the threads;
/// the caller reads the counters only after that join.
final class BackupPipeline: @unchecked Sendable {
    /// Plaintext pieces handed to the compressor (the reader coalesces pipe reads to this).
    static let pieceSize = 1 << 20
    /// Pieces waiting in each hand-off.
    static let depth = 4

    struct Totals {
        var compressedBytes: Int64
        var storedBytes: Int64
        var sha256: String
    }

    private let raw = HandOff(capacity: BackupPipeline.depth)
    private let compressed = HandOff(capacity: BackupPipeline.depth)
    private let failure = Mutex<BackupError?>(nil)
    private var threads: [pthread_t] = []

    // Compressor thread only.
    private let compressor: ZstdCompressor
    private var compressedBytes: Int64 = 0
    // Sealer thread only.
    private var encryptor: BackupEncryptor
    private let sink: any BackupWriter
    private let sha = StreamingSHA256()
    private var storedBytes: Int64 = 0

    init(compressor: ZstdCompressor, encryptor: BackupEncryptor, sink: any BackupWriter) {
        self.compressor = compressor
        self.encryptor = encryptor
        self.sink = sink
    }

    /// Starts the compressor and sealer threads (the sealer writes the header first).
    func start() {
        threads.append(LoopThread.start(name: "backup-zstd") { [self] in compressStage() })
        threads.append(LoopThread.start(name: "backup-seal") { [self] in sealStage() })
    }

    /// From the reading thread: hands a piece on, waiting while the compressor is `depth`
    /// pieces behind. Throws the failing stage's error once a stage failed.
    func feed(_ piece: [UInt8]) throws(BackupError) {
        guard !piece.isEmpty else { return }
        if !raw.put(piece) { throw firstFailure }
    }

    /// End of input: waits until every byte is compressed, sealed and written (not yet
    /// committed); the totals, or the first error of a stage.
    func finish() throws(BackupError) -> Totals {
        raw.close()
        join()
        if let error = failure.withLock({ $0 }) { throw error }
        return Totals(compressedBytes: compressedBytes, storedBytes: storedBytes, sha256: sha.finish())
    }

    /// A failure outside the pipeline (pg_dump's): stops both stages and waits for them.
    func abort() {
        raw.cancel()
        compressed.cancel()
        join()
    }

    private var firstFailure: BackupError {
        failure.withLock { $0 } ?? BackupError("the backup pipeline stopped")
    }

    private func join() {
        for thread in threads { LoopThread.join(thread) }
        threads = []
    }

    /// Records the first error and ends both hand-offs, so the other stages stop too.
    private func fail(_ error: BackupError) {
        failure.withLock { if $0 == nil { $0 = error } }
        raw.cancel()
        compressed.cancel()
    }

    private func compressStage() {
        do throws(BackupError) {
            while let piece = raw.take() {
                let out = try zstd { () throws(BackupFormatError) in try compressor.update(piece) }
                compressedBytes += Int64(out.count)
                if !out.isEmpty, !compressed.put(out) { return }
            }
            if raw.isCancelled { return }
            let tail = try zstd { () throws(BackupFormatError) in try compressor.finish() }
            compressedBytes += Int64(tail.count)
            if !tail.isEmpty, !compressed.put(tail) { return }
            compressed.close()
        } catch {
            fail(error)
        }
    }

    private func sealStage() {
        do throws(BackupError) {
            try store(encryptor.header)
            while let piece = compressed.take() {
                try store(encryptor.update(piece))
            }
            if compressed.isCancelled { return }
            try store(encryptor.finish())
        } catch {
            fail(error)
        }
    }

    private func store(_ bytes: [UInt8]) throws(BackupError) {
        guard !bytes.isEmpty else { return }
        try sink.write(bytes)
        sha.update(bytes)
        storedBytes += Int64(bytes.count)
    }

    private func zstd(_ body: () throws(BackupFormatError) -> [UInt8]) throws(BackupError) -> [UInt8] {
        do { return try body() } catch { throw BackupError(error.description) }
    }
}
