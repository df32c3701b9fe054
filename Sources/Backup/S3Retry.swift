/// Which S3 failures are worth another attempt, and how long to wait before it (pure).
///
/// Transient, retried: the connection refused, reset or cut short, a timeout, HTTP 500, 502,
/// 503 (S3's `SlowDown`), 504 and 429, and a 200 answer whose body is an `<Error>` document
/// (CompleteMultipartUpload reports `InternalError` that way; Amazon S3 API Reference,
/// CompleteMultipartUpload: "you should retry"). Permanent, never retried: every other
/// status, among them 400, 403 (credentials, signature, policy) and 404 (a key or upload that
/// must exist) — another attempt would fail the same way, only later.
///
/// Waits: capped exponential back-off with full jitter (AWS Architecture Blog, "Exponential
/// Backoff And Jitter"): before attempt n+1, a uniformly random time in
/// [0, min(cap, base · 2ⁿ)], and never less than a `Retry-After` the server sent (capped too).
public struct S3RetryPolicy: Sendable, Equatable {
    /// Attempts per request, the first included (1 = no retries).
    public var maxAttempts: Int
    public var baseMilliseconds: Int
    public var capMilliseconds: Int

    public init(maxAttempts: Int = 5, baseMilliseconds: Int = 200, capMilliseconds: Int = 10_000) {
        self.maxAttempts = max(1, maxAttempts)
        self.baseMilliseconds = baseMilliseconds
        self.capMilliseconds = capMilliseconds
    }

    /// HTTP statuses that say "try again" (`method`: only a POST's 200 can carry an error).
    public static func isTransient(status: Int, body: [UInt8], method: String) -> Bool {
        switch status {
        case 429, 500, 502, 503, 504: return true
        case 200 where method == "POST":
            // An error document in a 200 (CompleteMultipartUpload) is S3's way of saying 500.
            let head = String(decoding: body.prefix(200), as: UTF8.self)
            return head.contains("<Error>")
        default: return false
        }
    }

    /// The ceiling of the wait before attempt `attempt + 1` (`attempt` ≥ 1 failed so far).
    public func ceilingMilliseconds(afterAttempt attempt: Int) -> Int {
        let exponent = min(max(attempt - 1, 0), 20)
        return min(capMilliseconds, baseMilliseconds << exponent)
    }

    /// The wait before the next attempt; `unit` is a uniform random number in [0, 1).
    public func delayMilliseconds(afterAttempt attempt: Int, unit: Double, retryAfterSeconds: Int? = nil) -> Int {
        let jittered = Int(Double(ceilingMilliseconds(afterAttempt: attempt)) * min(max(unit, 0), 1))
        guard let retryAfterSeconds, retryAfterSeconds > 0 else { return jittered }
        return max(jittered, min(capMilliseconds, retryAfterSeconds * 1000))
    }
}
